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

    // The exported model file classifies like the data dir's version, through the library API.
    let file = reports.path().join("v2.sprig");
    let export = sprig(
        data.path(),
        &["models", "export", "2", file.to_str().unwrap()],
    );
    assert!(export.status.success(), "{}", text(&export).1);
    let leaf = common::repo().join("data/beans-sample/test/healthy/test-healthy_0007.jpg");
    let offline = sprig(data.path(), &["predict", "--json", leaf.to_str().unwrap()]);
    let rows: serde_json::Value = serde_json::from_slice(&offline.stdout).unwrap();
    let model = sprig_core::embed::Model::from_file(&file, "flex").unwrap();
    let prediction = model.predict_file(&leaf).unwrap();
    assert_eq!(rows[0]["predicted_class"], prediction.class.as_str());
    assert_eq!(rows[0]["model_version"], 2);
    let confidence = rows[0]["confidence"].as_f64().unwrap();
    // The same backend and arithmetic; only the JSON's float formatting differs.
    assert!((confidence - f64::from(prediction.confidence)).abs() < 1e-6);

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
