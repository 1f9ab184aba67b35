//! The report `sprig train` writes: the version's metrics as JSON, and PNG plots of the training
//! curves, of the validation confusion matrix and of the reliability diagram after calibration.

use std::path::Path;

use anyhow::Context;
use sprig_plots::{confusion_matrix, line_chart, Series, XAxis};
use sprig_store::{EpochMetrics, ModelVersionRecord};

pub fn write(dir: &Path, version: &ModelVersionRecord) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("metrics.json"),
        serde_json::to_string_pretty(version)?,
    )
    .context("writing metrics.json")?;
    let curve = |name: &str, value: fn(&EpochMetrics) -> Option<f64>| Series {
        name: name.to_string(),
        points: version
            .epochs
            .iter()
            .filter_map(|e| value(e).map(|v| (f64::from(e.epoch), v)))
            .collect(),
    };
    let title = |what: &str| format!("version {} — {what}", version.version);
    line_chart(
        &dir.join("loss.png"),
        &title("loss"),
        XAxis::Whole("epoch"),
        "cross-entropy",
        &[
            curve("train", |e| Some(e.train_loss)),
            curve("validation", |e| e.val_loss),
        ],
    )?;
    line_chart(
        &dir.join("accuracy.png"),
        &title("accuracy"),
        XAxis::Whole("epoch"),
        "accuracy",
        &[
            curve("train", |e| Some(e.train_accuracy)),
            curve("validation", |e| e.val_accuracy),
        ],
    )?;
    confusion_matrix(
        &dir.join("confusion_matrix.png"),
        &title(&format!(
            "confusion matrix ({} validation images)",
            version.evaluation.examples
        )),
        &version.classes,
        &version.evaluation.confusion_matrix,
    )?;
    if let Some(calibration) = &version.evaluation.calibration {
        line_chart(
            &dir.join("reliability.png"),
            &title(&format!(
                "reliability after temperature {:.2} (ECE {:.3} -> {:.3})",
                calibration.temperature, calibration.ece_before, calibration.ece_after
            )),
            XAxis::Continuous("confidence"),
            "accuracy",
            &[
                Series {
                    name: "perfectly calibrated".into(),
                    points: vec![(0.0, 0.0), (1.0, 1.0)],
                },
                Series {
                    name: "this version (bins with images)".into(),
                    points: calibration
                        .bins
                        .iter()
                        .filter(|b| b.count > 0)
                        .map(|b| (b.confidence, b.accuracy))
                        .collect(),
                },
            ],
        )?;
    }
    Ok(())
}
