//! The offline commands: they open the data dir directly (no server may be using it) and run the
//! same engine code paths the HTTP API uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sprig_backends::BackboneKind;
use sprig_core::pipeline::activation_decision;
use sprig_core::{
    ActivationPolicy, Engine, InferenceObserver, PipelineObserver, TrainingOverrides,
};
use sprig_store::{EpochMetrics, ModelVersionRecord};

use crate::config::Config;
use crate::serve::open_stores;

/// Offline runs have no metrics endpoint to feed.
struct NoMetrics;

impl InferenceObserver for NoMetrics {
    fn batch_done(&self, _model_version: u32, _batch_size: usize, _seconds: f64) {}
}

fn open_engine(config: &Config) -> anyhow::Result<Engine> {
    let stores = open_stores(config)?;
    Ok(Engine::open(stores, config.engine(), Arc::new(NoMetrics))?)
}

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}} {{msg}}"))
            .expect("valid progress template"),
    );
    bar
}

pub fn import(config: &Config, dir: &Path) -> anyhow::Result<()> {
    let engine = open_engine(config)?;
    import_into(&engine, dir)?;
    engine.shutdown()?;
    Ok(())
}

/// Imports with a progress bar and prints the per-class summary.
fn import_into(engine: &Engine, dir: &Path) -> anyhow::Result<()> {
    let bar = progress_bar(0, "importing");
    let summary = engine
        .ingest
        .import_dir(dir, "import", &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
    bar.finish_and_clear();
    println!(
        "{:<24} {:>8} {:>10} {:>9}",
        "class", "stored", "duplicate", "rejected"
    );
    for (class, counts) in &summary.classes {
        println!(
            "{class:<24} {:>8} {:>10} {:>9}",
            counts.stored, counts.duplicate, counts.rejected
        );
    }
    for (file, reason) in &summary.rejections {
        println!("rejected {file}: {reason}");
    }
    Ok(())
}

pub async fn predict(config: &Config, files: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let engine = open_engine(config)?;
    let Some(version) = engine.registry.restore()? else {
        bail!(
            "no model version is active in {}: start the server once or run `sprig train`",
            config.server.data_dir.display()
        );
    };
    let mut inputs = Vec::with_capacity(files.len());
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        inputs.push((Some(file.display().to_string()), Ok(bytes)));
    }
    let results = engine.predictor.predict_many(inputs).await;
    if json {
        let rows: Vec<serde_json::Value> = files
            .iter()
            .zip(&results)
            .map(|(file, result)| match result {
                Ok(p) => serde_json::json!({
                    "file": file, "success": true, "predicted_class": p.predicted_class,
                    "confidence": p.confidence, "model_version": p.model_version,
                    "probabilities": p.probabilities.iter().map(|c| (c.class.clone(), c.probability)).collect::<std::collections::BTreeMap<_, _>>(),
                }),
                Err(e) => serde_json::json!({"file": file, "success": false, "error": e.to_string()}),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("model version {version}");
        println!("{:<48} {:<24} {:>10}", "file", "class", "confidence");
        for (file, result) in files.iter().zip(&results) {
            match result {
                Ok(p) => println!(
                    "{:<48} {:<24} {:>10.4}",
                    file.display(),
                    p.predicted_class,
                    p.confidence
                ),
                Err(e) => println!("{:<48} error: {e}", file.display()),
            }
        }
    }
    engine.shutdown()?;
    Ok(())
}

/// Command-line overrides of `sprig train`.
pub struct TrainArgs {
    pub epochs: Option<usize>,
    pub learning_rate: Option<f64>,
    pub backbone: Option<String>,
    pub fine_tune: Option<bool>,
    pub activation_policy: Option<ActivationPolicy>,
}

pub fn train(
    config: &Config,
    data: Option<&Path>,
    report: &Path,
    args: TrainArgs,
) -> anyhow::Result<()> {
    let engine = open_engine(config)?;
    if let Some(dir) = data {
        import_into(&engine, dir)?;
    }
    let backbone = match args.backbone.as_deref() {
        Some(name) => {
            Some(BackboneKind::parse(name).with_context(|| format!("unknown backbone '{name}'"))?)
        }
        None => None,
    };
    let overrides = TrainingOverrides {
        backbone,
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        augment_views: None,
        fine_tune: args.fine_tune,
        activation_policy: args.activation_policy,
    };
    let training = engine.retrainer.config().with_overrides(&overrides)?;
    let bar = progress_bar(100, "training");
    let mut observer = BarObserver { bar: bar.clone() };
    let trained = engine
        .pipeline
        .run(&training, "offline", None, &mut observer)?;
    bar.finish_and_clear();
    let version = trained.version;
    let active = engine
        .stores
        .models
        .active()?
        .and_then(|v| engine.stores.models.get(v).ok().flatten());
    let (activate, reason) = activation_decision(
        training.activation_policy,
        training.activation_tolerance,
        &version,
        active.as_ref(),
    );
    if activate {
        engine
            .stores
            .models
            .activate(version.version, &format!("sprig train: {reason}"))?;
    }
    crate::report::write(report, &version)?;
    println!(
        "version {} trained in {:.1} s on {} images: validation accuracy {:.3}, macro-F1 {:.3} ({}activated: {reason})",
        version.version,
        version.duration_ms as f64 / 1000.0,
        version.data_snapshot.total_images,
        version.evaluation.accuracy,
        version.evaluation.macro_f1,
        if activate { "" } else { "not " },
    );
    println!("report written to {}", report.display());
    engine.shutdown()?;
    Ok(())
}

struct BarObserver {
    bar: ProgressBar,
}

impl PipelineObserver for BarObserver {
    fn progress(&mut self, percent: f64, message: &str) {
        self.bar.set_position(percent as u64);
        self.bar.set_message(message.to_string());
    }

    fn epoch(&mut self, metrics: &EpochMetrics, max_epochs: u32) {
        self.bar.println(format!(
            "epoch {}/{max_epochs}: train loss {:.4} acc {:.3} | val loss {} acc {}",
            metrics.epoch,
            metrics.train_loss,
            metrics.train_accuracy,
            metrics.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
            metrics
                .val_accuracy
                .map_or("-".into(), |v| format!("{v:.3}")),
        ));
    }

    fn cancelled(&self) -> bool {
        false
    }
}

pub fn models_list(config: &Config) -> anyhow::Result<()> {
    let stores = open_stores(config)?;
    let active = stores.models.active()?;
    println!(
        "{:<8} {:<7} {:<20} {:<20} {:>9} {:>9} {:<10}",
        "version", "active", "created", "backbone", "accuracy", "macro-F1", "origin"
    );
    for m in stores.models.list()? {
        println!(
            "{:<8} {:<7} {:<20} {:<20} {:>9.3} {:>9.3} {:<10}",
            m.version,
            if active == Some(m.version) { "*" } else { "" },
            m.created_at.format("%Y-%m-%d %H:%M:%S"),
            m.backbone,
            m.evaluation.accuracy,
            m.evaluation.macro_f1,
            m.origin
        );
    }
    Ok(())
}

pub fn models_show(config: &Config, version: u32) -> anyhow::Result<()> {
    let stores = open_stores(config)?;
    let record: ModelVersionRecord = stores
        .models
        .get(version)?
        .with_context(|| format!("no model version {version}"))?;
    println!("{}", serde_json::to_string_pretty(&record)?);
    Ok(())
}

pub fn models_activate(config: &Config, version: u32) -> anyhow::Result<()> {
    let engine = open_engine(config)?;
    let entry = engine
        .registry
        .activate(version, "activated with `sprig models activate`")?;
    println!("version {} is active (was {:?})", entry.to, entry.from);
    engine.shutdown()?;
    Ok(())
}
