//! The report `sprig train` writes: the version's metrics as JSON.

use std::path::Path;

use anyhow::Context;
use sprig_store::ModelVersionRecord;

pub fn write(dir: &Path, version: &ModelVersionRecord) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let metrics = serde_json::to_string_pretty(version)?;
    std::fs::write(dir.join("metrics.json"), metrics).context("writing metrics.json")?;
    Ok(())
}
