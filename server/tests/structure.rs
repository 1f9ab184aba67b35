//! Structure rules the compiler does not check by itself.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Handlers reach data only through core's use cases: the engine's stores are private to core,
/// and no store type may reach `server/src/api/` some other way.
#[test]
fn handlers_never_name_a_store() {
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let files = rust_files(&api);
    assert!(files.len() >= 10, "{} files", files.len());
    let stores = [
        "stores",
        "Stores",
        "SledStore",
        "ImageStore",
        "PredictionStore",
        "ModelStore",
        "JobStore",
        "FeatureCache",
    ];
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            if let Some(name) = stores.iter().find(|name| line.contains(*name)) {
                panic!("{}:{}: names `{name}`: {line}", path.display(), number + 1);
            }
        }
    }
}
