//! The offline commands go through the engine's use cases: `sprig train` applies the activation
//! policy a retrain job applies, and it and `sprig models activate` load and warm a version up on
//! the backend before it becomes the active one, as `POST /api/models/{v}/activate` does.

mod common;

use std::path::Path;
use std::process::Output;

fn sprig(data_dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sprig"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--backend", "flex"])
        .args(args)
        .env("SPRIG_LOG__LEVEL", "info")
        .env("SPRIG_RUNTIMES__FETCH", "never")
        .output()
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The registry's log line when a version is loaded and warmed up before it is swapped in.
fn warmed_up(stderr: &str, version: u32) -> bool {
    stderr
        .lines()
        .any(|l| l.contains("loaded and warmed up") && l.contains(&format!("version={version}")))
}

#[test]
fn train_and_models_activate_load_and_warm_the_version_like_the_api() {
    let data = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let report = |name: &str| reports.path().join(name).to_str().unwrap().to_string();
    let sample = common::repo().join("data/beans-sample/train");

    let first = sprig(
        data.path(),
        &[
            "train",
            "--data",
            sample.to_str().unwrap(),
            "--epochs",
            "2",
            "--report",
            &report("v1"),
        ],
    );
    let (out, err) = text(&first);
    assert!(first.status.success(), "{out}\n{err}");
    assert!(
        out.contains("version 1 trained") && out.contains("(activated: no version was active)"),
        "{out}"
    );
    assert!(
        warmed_up(&err, 1),
        "version 1 is loaded before it is active:\n{err}"
    );

    let second = sprig(
        data.path(),
        &[
            "train",
            "--epochs",
            "1",
            "--activation-policy",
            "manual",
            "--report",
            &report("v2"),
        ],
    );
    let (out, err) = text(&second);
    assert!(second.status.success(), "{out}\n{err}");
    assert!(
        out.contains("version 2 trained")
            && out.contains("(not activated: activation policy is manual)"),
        "{out}"
    );
    assert!(!warmed_up(&err, 2), "{err}");

    let activate = sprig(data.path(), &["models", "activate", "2"]);
    let (out, err) = text(&activate);
    assert!(activate.status.success(), "{out}\n{err}");
    assert!(out.contains("version 2 is active (was Some(1))"), "{out}");
    assert!(
        warmed_up(&err, 2),
        "the CLI loads the version first:\n{err}"
    );

    let missing = sprig(data.path(), &["models", "activate", "9"]);
    let (out, err) = text(&missing);
    assert!(!missing.status.success(), "{out}");
    assert!(err.contains("model version '9' not found"), "{err}");

    // The exported bundle classifies like the data dir's version, calibrated, through the
    // library API; the bare model file gives the model's own confidences.
    let export = |format: &str| {
        let file = reports.path().join(format!("v2.{format}"));
        let export = sprig(
            data.path(),
            &[
                "models",
                "export",
                "2",
                file.to_str().unwrap(),
                "--format",
                format,
            ],
        );
        assert!(export.status.success(), "{}", text(&export).1);
        sprig_core::embed::Model::from_file(&file, "flex").unwrap()
    };
    let leaf = common::repo().join("data/beans-sample/test/healthy/test-healthy_0007.jpg");
    let offline = sprig(data.path(), &["predict", "--json", leaf.to_str().unwrap()]);
    let rows: serde_json::Value = serde_json::from_slice(&offline.stdout).unwrap();
    let prediction = export("bundle").predict_file(&leaf).unwrap();
    assert_eq!(rows[0]["predicted_class"], prediction.class.as_str());
    assert_eq!(rows[0]["model_version"], 2);
    let confidence = rows[0]["confidence"].as_f64().unwrap();
    // The same backend and arithmetic; only the JSON's float formatting differs.
    assert!((confidence - f64::from(prediction.confidence)).abs() < 1e-6);
    let (record, _) = text(&sprig(data.path(), &["models", "show", "2"]));
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let temperature = record["evaluation"]["calibration"]["temperature"]
        .as_f64()
        .expect("calibrated on the out-of-fold answers of the 60 demo photos");
    let bare = export("sprig").predict_file(&leaf).unwrap();
    let own: Vec<f32> = bare.probabilities.iter().map(|(_, p)| *p).collect();
    let scaled = sprig_core::calibration::scale(&own, temperature);
    let served: Vec<f32> = prediction.probabilities.iter().map(|(_, p)| *p).collect();
    for (scaled, served) in scaled.iter().zip(&served) {
        assert!((scaled - served).abs() < 1e-6, "{scaled} against {served}");
    }

    let list = sprig(data.path(), &["models", "list"]);
    let (out, err) = text(&list);
    assert!(list.status.success(), "{err}");
    let active: Vec<&str> = out
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("*"))
        .collect();
    assert_eq!(active.len(), 1, "{out}");
    assert!(active[0].starts_with("2 "), "{out}");
}

/// `sprig train ARGS --report REPORT`: what it printed and the cross-validation report it wrote.
fn train_cv(data_dir: &Path, report: &Path, args: &[&str]) -> (String, serde_json::Value) {
    let all = [&["train", "--report", report.to_str().unwrap()], args].concat();
    let output = sprig(data_dir, &all);
    let (out, err) = text(&output);
    assert!(output.status.success(), "{out}\n{err}");
    let json = std::fs::read_to_string(report.join("cross_validation.json")).unwrap();
    (out, serde_json::from_str(&json).unwrap())
}

/// `sprig train --cv K` scores every image exactly once, in stable folds, and stores no
/// version; a second run over the same images reuses the features and gets the same folds.
#[test]
fn train_cv_scores_every_image_once_in_stable_folds() {
    let data = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let sample = common::repo().join("data/beans-sample/train");
    let run = |extra: &[&str], report: &str| {
        let args = [&["--cv", "3", "--epochs", "3"], extra].concat();
        train_cv(data.path(), &reports.path().join(report), &args)
    };
    let (out, first) = run(&["--data", sample.to_str().unwrap()], "a");
    assert!(out.contains("3-fold cross-validation"), "{out}");
    assert!(out.contains("accuracy: mean"), "{out}");

    let images = first["images"].as_u64().unwrap();
    assert_eq!(images, 60, "the bundled sample has 60 photos");
    let folds = first["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 3);
    let scored: Vec<u64> = folds
        .iter()
        .map(|f| f["evaluation"]["examples"].as_u64().unwrap())
        .collect();
    assert_eq!(
        scored.iter().sum::<u64>(),
        images,
        "each image scored once: {scored:?}"
    );
    for fold in folds {
        let held_out = fold["evaluation"]["examples"].as_u64().unwrap();
        let trained = fold["trained_on"].as_u64().unwrap();
        let stopped = fold["stopped_on"].as_u64().unwrap();
        // The other folds' images train or stop the head; the held-out ones do neither.
        assert_eq!(held_out + trained + stopped, images, "{fold}");
        let accuracy = fold["evaluation"]["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy));
    }
    let correct: f64 = folds
        .iter()
        .map(|f| {
            f["evaluation"]["accuracy"].as_f64().unwrap()
                * f["evaluation"]["examples"].as_f64().unwrap()
        })
        .sum();
    let pooled = first["pooled_accuracy"].as_f64().unwrap();
    assert!((pooled - correct / images as f64).abs() < 1e-9);

    // The report keeps every image's held-out answer, each image once, in its fold; the
    // figures are the answers' (argmax against the label).
    let answers = first["answers"].as_array().unwrap();
    let hashes: std::collections::HashSet<&str> = answers
        .iter()
        .map(|a| a["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(hashes.len() as u64, images, "each image answered once");
    let classes = first["classes"].as_array().unwrap().len();
    assert_eq!(classes, 3);
    for (index, fold) in folds.iter().enumerate() {
        let mine: Vec<&serde_json::Value> = answers
            .iter()
            .filter(|a| a["fold"].as_u64() == Some(index as u64 + 1))
            .collect();
        let right = mine
            .iter()
            .filter(|a| {
                let p: Vec<f64> = a["probabilities"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                assert_eq!(p.len(), classes);
                assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{p:?}");
                let top = (0..classes).max_by(|&i, &j| p[i].total_cmp(&p[j])).unwrap();
                top as u64 == a["label"].as_u64().unwrap()
            })
            .count() as f64;
        assert_eq!(
            mine.len() as u64,
            fold["evaluation"]["examples"].as_u64().unwrap()
        );
        let accuracy = fold["evaluation"]["accuracy"].as_f64().unwrap();
        assert!(
            (right / mine.len() as f64 - accuracy).abs() < 1e-9,
            "fold {index}"
        );
    }

    // No version was stored: the list is its header alone.
    let listed = sprig(data.path(), &["models", "list"]);
    let (out, err) = text(&listed);
    assert!(listed.status.success(), "{out}\n{err}");
    assert_eq!(out.lines().count(), 1, "{out}");

    // The same images (already stored) fall into the same folds.
    let (_, second) = run(&[], "b");
    let sizes = |cv: &serde_json::Value| -> Vec<u64> {
        cv["folds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["evaluation"]["examples"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(sizes(&second), scored);
}

/// `sprig train --cv K --fine-tune true` puts each fold's head through phase 2: the report says
/// how many blocks were tuned, and the held-out answers are the tuned models', not the frozen
/// heads' (same folds, same heads before phase 2, other probabilities).
#[test]
fn train_cv_fine_tunes_each_fold_when_asked() {
    let data = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let sample = common::repo().join("data/beans-sample/train");
    let run = |extra: &[&str], report: &str| {
        let args = [&["--cv", "2", "--epochs", "2", "--pooling", "final"], extra].concat();
        train_cv(data.path(), &reports.path().join(report), &args)
    };
    let (out, frozen) = run(&["--data", sample.to_str().unwrap()], "frozen");
    assert!(!out.contains("backbone blocks"), "{out}");
    assert!(frozen["fine_tuned_blocks"].is_null(), "{frozen}");

    let (out, tuned) = run(&["--fine-tune", "true"], "tuned");
    assert!(
        out.contains("cross-validation of the head and the last 2 backbone blocks"),
        "{out}"
    );
    assert_eq!(tuned["fine_tuned_blocks"], 2, "{tuned}");
    let folds = |cv: &serde_json::Value| -> Vec<(u64, u64)> {
        cv["folds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let examples = f["evaluation"]["examples"].as_u64().unwrap();
                (examples, f["stopped_on"].as_u64().unwrap())
            })
            .collect()
    };
    assert_eq!(folds(&tuned), folds(&frozen), "the same folds");
    let raw_ece = |cv: &serde_json::Value| cv["pooled_ece_before"].as_f64().unwrap();
    assert_ne!(
        raw_ece(&tuned),
        raw_ece(&frozen),
        "the tuned models answered for the held-out images"
    );
}
