//! The offline commands: they open the data dir directly (no server may be using it) and run the
//! same engine code paths the HTTP API uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sprig_backends::{BackboneKind, Pooling};
use sprig_core::{
    ActivationPolicy, Engine, InferenceObserver, PipelineObserver, TrainingOverrides,
};
use sprig_store::{CalibrationFit, EpochMetrics};

use crate::config::Config;
use crate::store_admin::open_stores;

/// Offline runs have no metrics endpoint to feed.
struct NoMetrics;

impl InferenceObserver for NoMetrics {
    fn batch_done(&self, _model_version: u32, _batch_size: usize, _seconds: f64) {}
}

/// Opening the engine selects the backend, so a missing runtime is fetched first as `serve`
/// fetches it (`runtimes.fetch`): otherwise `sprig train --backend auto` on a fresh machine
/// would train on flex, the slow path, without a word.
fn open_engine(config: &Config) -> anyhow::Result<Engine> {
    crate::runtimes::prepare(config);
    let stores = open_stores(config)?;
    Ok(Engine::open(
        stores,
        config.engine.clone(),
        Arc::new(NoMetrics),
    )?)
}

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}} {{msg}}"))
            .expect("valid progress template"),
    );
    bar
}

pub async fn import(config: &Config, dir: &Path) -> anyhow::Result<()> {
    let engine = open_engine(config)?;
    import_into(&engine, dir).await?;
    engine.shutdown()?;
    Ok(())
}

/// Imports with a progress bar and prints the per-class summary.
async fn import_into(engine: &Engine, dir: &Path) -> anyhow::Result<()> {
    let bar = progress_bar(0, "importing");
    let summary = engine
        .import_dir(dir, &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await?;
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
    let Some(version) = engine.restore_active()? else {
        bail!(
            "no model version is active in {}: start the server once or run `sprig train`",
            engine.store_description()
        );
    };
    let mut inputs = Vec::with_capacity(files.len());
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        inputs.push((Some(file.display().to_string()), Ok(bytes)));
    }
    let results = engine.predict_many(inputs, None).await;
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
    pub pooling: Option<String>,
    pub fine_tune: Option<bool>,
    pub test_time_flip: Option<bool>,
    pub test_time_views: Option<u32>,
    pub activation_policy: Option<ActivationPolicy>,
    /// Cross-validate over this many folds instead of training a version.
    pub cv: Option<usize>,
}

pub async fn train(
    config: &Config,
    data: Option<&Path>,
    report: &Path,
    args: TrainArgs,
) -> anyhow::Result<()> {
    let engine = open_engine(config)?;
    if let Some(dir) = data {
        import_into(&engine, dir).await?;
    }
    let backbone = match args.backbone.as_deref() {
        Some(name) => {
            Some(BackboneKind::parse(name).with_context(|| format!("unknown backbone '{name}'"))?)
        }
        None => None,
    };
    let pooling = match args.pooling.as_deref() {
        Some(name) => Some(
            Pooling::parse(name)
                .with_context(|| format!("unknown pooling '{name}' (final or every_block)"))?,
        ),
        None => None,
    };
    let overrides = TrainingOverrides {
        backbone,
        pooling,
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        augment_views: None,
        test_time_flip: args.test_time_flip,
        test_time_views: args.test_time_views,
        fine_tune: args.fine_tune,
        activation_policy: args.activation_policy,
    };
    let bar = progress_bar(100, "training");
    let mut observer = BarObserver { bar: bar.clone() };
    if let Some(folds) = args.cv {
        let cv = engine.cross_validate(&overrides, folds, &mut observer)?;
        bar.finish_and_clear();
        print_cross_validation(&cv);
        std::fs::create_dir_all(report)
            .with_context(|| format!("creating {}", report.display()))?;
        let path = report.join("cross_validation.json");
        std::fs::write(&path, serde_json::to_string_pretty(&cv)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
        engine.shutdown()?;
        return Ok(());
    }
    let outcome = engine.train(&overrides, &mut observer)?;
    bar.finish_and_clear();
    let version = &outcome.trained.version;
    crate::report::write(report, version)?;
    if let Some(c) = &version.evaluation.calibration {
        let fitted_on = match c.fitted_on {
            CalibrationFit::OutOfFold => {
                format!("fitted on {} out-of-fold answers", c.fitted_answers)
            }
            CalibrationFit::Validation => "fitted on the same images".into(),
        };
        println!(
            "calibrated: temperature {:.3} ({fitted_on}); expected calibration error on the validation images {:.4} -> {:.4}",
            c.temperature, c.ece_before, c.ece_after
        );
    }
    println!(
        "version {} trained in {:.1} s on {} images: validation accuracy {:.3}, macro-F1 {:.3} ({}activated: {})",
        version.version,
        version.duration_ms as f64 / 1000.0,
        version.data_snapshot.total_images,
        version.evaluation.accuracy,
        version.evaluation.macro_f1,
        if outcome.activated { "" } else { "not " },
        outcome.reason,
    );
    println!("report written to {}", report.display());
    engine.shutdown()?;
    Ok(())
}

fn print_cross_validation(cv: &sprig_core::CrossValidation) {
    let tuned = match cv.fine_tuned_blocks {
        Some(blocks) => format!(" and the last {blocks} backbone blocks"),
        None => String::new(),
    };
    println!(
        "{}-fold cross-validation of the head{tuned} ({}, {} pooling, on {}, {} images, {} augmented views, up to {} epochs):",
        cv.folds.len(),
        cv.backbone,
        cv.pooling,
        cv.backend,
        cv.images,
        cv.augment_views,
        cv.epochs,
    );
    println!(
        "{:>4} {:>8} {:>8} {:>9} {:>9}",
        "fold", "trained", "scored", "accuracy", "macro-F1"
    );
    for fold in &cv.folds {
        println!(
            "{:>4} {:>8} {:>8} {:>9.4} {:>9.4}",
            fold.fold,
            fold.trained_on,
            fold.evaluation.examples,
            fold.evaluation.accuracy,
            fold.evaluation.macro_f1
        );
    }
    let line = |name: &str, s: &sprig_core::Spread| {
        println!(
            "{name}: mean {:.4} ± {:.4} (sample std over folds), range {:.4}-{:.4}",
            s.mean, s.std, s.min, s.max
        )
    };
    line("accuracy", &cv.accuracy);
    line("macro-F1", &cv.macro_f1);
    if let (Some(before), Some(after)) = (&cv.ece_before, &cv.ece_after) {
        line("calibration error (ECE) raw", before);
        line(
            "calibration error (ECE) after the fold's temperature",
            after,
        );
    }
    println!(
        "pooled over all {} images, each scored once: accuracy {:.4}; calibration error (ECE) raw {:.4}, after its fold's temperature {}; {:.1} s",
        cv.images,
        cv.pooled_accuracy,
        cv.pooled_ece_before,
        cv.pooled_ece_after.map_or("- (a fold had too few images to fit one)".into(), |e| format!("{e:.4}")),
        cv.duration_ms as f64 / 1000.0
    );
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
    let engine = open_engine(config)?;
    let catalog = engine.model_versions()?;
    println!(
        "{:<8} {:<7} {:<20} {:<20} {:>9} {:>9} {:<10}",
        "version", "active", "created", "backbone", "accuracy", "macro-F1", "origin"
    );
    for m in &catalog.versions {
        println!(
            "{:<8} {:<7} {:<20} {:<20} {:>9.3} {:>9.3} {:<10}",
            m.version,
            if catalog.active == Some(m.version) {
                "*"
            } else {
                ""
            },
            m.created_at.format("%Y-%m-%d %H:%M:%S"),
            m.backbone,
            m.evaluation.accuracy,
            m.evaluation.macro_f1,
            m.origin
        );
    }
    engine.shutdown()?;
    Ok(())
}

pub fn models_show(config: &Config, version: u32) -> anyhow::Result<()> {
    let engine = open_engine(config)?;
    let (record, _) = engine.model_version(version)?;
    println!("{}", serde_json::to_string_pretty(&record)?);
    engine.shutdown()?;
    Ok(())
}

/// `sprig models export N FILE`: the model file, or the bundle when `bundle`.
pub fn models_export(
    config: &Config,
    version: u32,
    file: &Path,
    bundle: bool,
) -> anyhow::Result<()> {
    let engine = open_engine(config)?;
    let bytes = if bundle {
        engine.model_bundle(version)?
    } else {
        engine.model_file(version)?
    };
    std::fs::write(file, &bytes).with_context(|| format!("writing {}", file.display()))?;
    println!(
        "version {version} written to {} ({} bytes)",
        file.display(),
        bytes.len()
    );
    engine.shutdown()?;
    Ok(())
}

/// `sprig models export N DIR --format onnx`: `DIR/model.onnx` and `DIR/model_card.json`.
pub fn models_export_onnx(config: &Config, version: u32, dir: &Path) -> anyhow::Result<()> {
    let engine = open_engine(config)?;
    let export = engine.export_onnx(version)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let model = dir.join("model.onnx");
    std::fs::write(&model, &export.model)
        .with_context(|| format!("writing {}", model.display()))?;
    let card = dir.join("model_card.json");
    let json = serde_json::to_string_pretty(&export.card)? + "\n";
    std::fs::write(&card, json).with_context(|| format!("writing {}", card.display()))?;
    let parity = &export.card.parity;
    let check = match &parity.skipped {
        Some(why) => format!("not checked: {why}"),
        None => format!(
            "checked with {} on {} validation images: top-1 agrees on {}, largest probability \
             difference {:.2e}",
            parity.runtime.as_deref().unwrap_or("onnxruntime"),
            parity.images,
            parity.top1_agreement,
            parity.max_probability_difference
        ),
    };
    println!(
        "version {version} written to {} ({} bytes) and {}; {check}",
        model.display(),
        export.model.len(),
        card.display()
    );
    engine.shutdown()?;
    Ok(())
}

/// The API's activation: loads and warms the version before it becomes the active one.
pub async fn models_activate(config: &Config, version: u32) -> anyhow::Result<()> {
    let engine = open_engine(config)?;
    let activated = engine
        .activate(version, "activated with `sprig models activate`")
        .await?;
    println!(
        "version {} is active (was {:?})",
        activated.activation.to, activated.activation.from
    );
    engine.shutdown()?;
    Ok(())
}
