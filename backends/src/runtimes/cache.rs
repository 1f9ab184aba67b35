//! sprig's cache of runtimes: `<cache>/<package>-<version>-<platform>/` holds the files kept
//! from the wheel, at their paths inside it, and `manifest.json` with each file's SHA-256. A
//! wheel is verified before it is opened, extracted beside the final folder and renamed into
//! place (so a half-written install is never seen), and re-verified before every load.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::pins::{keeps, Pin};

const MANIFEST: &str = "manifest.json";

#[derive(Serialize, Deserialize)]
struct Manifest {
    wheel: String,
    wheel_sha256: String,
    /// Path inside the wheel → SHA-256 of the extracted file.
    files: BTreeMap<String, String>,
}

/// The folder a pinned wheel is installed into.
pub fn install_dir(cache_dir: &Path, pin: &Pin) -> PathBuf {
    cache_dir.join(format!(
        "{}-{}-{}",
        pin.runtime.name(),
        pin.runtime.version(),
        pin.platform
    ))
}

/// The SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        match file.read(&mut buffer)? {
            0 => return Ok(hex::encode(hasher.finalize())),
            n => hasher.update(&buffer[..n]),
        }
    }
}

/// Installs a downloaded `wheel` of `pin` into the cache: the library's path, or why not. A
/// wheel whose hash is not the pinned one is refused before it is opened.
pub fn install(wheel: &Path, pin: &Pin, cache_dir: &Path) -> Result<PathBuf, String> {
    let size = fs::metadata(wheel)
        .map_err(|e| format!("reading {}: {e}", wheel.display()))?
        .len();
    if size != pin.size {
        return Err(format!(
            "refused {}: it is {size} bytes, the pinned one is {} (SHA-256 not checked)",
            pin.wheel, pin.size
        ));
    }
    let actual = sha256_file(wheel).map_err(|e| format!("reading {}: {e}", wheel.display()))?;
    if actual != pin.sha256 {
        return Err(format!(
            "refused {}: its SHA-256 is {actual}, the pinned one is {}",
            pin.wheel, pin.sha256
        ));
    }
    let dir = install_dir(cache_dir, pin);
    let mut temp = dir.clone().into_os_string();
    temp.push(format!(".tmp-{}", std::process::id()));
    let temp = PathBuf::from(temp);
    let installed = extract(wheel, pin, &temp).and_then(|()| {
        // A corrupted or stale copy is replaced; another process may have just installed a
        // good one, which is as good as ours.
        if dir.exists() && verify(cache_dir, pin).is_ok_and(|found| found.is_some()) {
            return Ok(());
        }
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&temp, &dir).map_err(|e| format!("moving {} into place: {e}", dir.display()))
    });
    let _ = fs::remove_dir_all(&temp);
    installed.map(|()| dir.join(pin.library))
}

/// Extracts the kept files of `wheel` into `into` and writes the manifest.
fn extract(wheel: &Path, pin: &Pin, into: &Path) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("extracting {}: {e}", pin.wheel);
    let _ = fs::remove_dir_all(into);
    fs::create_dir_all(into).map_err(|e| failed(&e))?;
    let file = File::open(wheel).map_err(|e| failed(&e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| failed(&e))?;
    let mut files = BTreeMap::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| failed(&e))?;
        let name = entry.name().to_string();
        if entry.is_dir() || !keeps(pin.runtime, &name) {
            continue;
        }
        // `enclosed_name` refuses absolute paths and `..`, which could write outside the cache.
        let relative = entry
            .enclosed_name()
            .ok_or_else(|| failed(&format!("unsafe path {name}")))?
            .to_path_buf();
        let target = into.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| failed(&e))?;
        }
        let mut out = File::create(&target).map_err(|e| failed(&e))?;
        io::copy(&mut entry, &mut out).map_err(|e| failed(&e))?;
        files.insert(name, sha256_file(&target).map_err(|e| failed(&e))?);
    }
    if !files.contains_key(pin.library) {
        return Err(failed(&format!("the wheel holds no {}", pin.library)));
    }
    let manifest = Manifest {
        wheel: pin.wheel.into(),
        wheel_sha256: pin.sha256.into(),
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| failed(&e))?;
    fs::write(into.join(MANIFEST), json).map_err(|e| failed(&e))
}

/// The cached library of `pin` after checking every kept file against the manifest: `None`
/// when nothing is cached, an error saying what is wrong with a corrupted or stale copy.
pub fn verify(cache_dir: &Path, pin: &Pin) -> Result<Option<PathBuf>, String> {
    let dir = install_dir(cache_dir, pin);
    let manifest = match fs::read(dir.join(MANIFEST)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.join(MANIFEST).display())),
    };
    let unusable = |why: String| format!("the cached copy in {} is unusable: {why}", dir.display());
    let manifest: Manifest =
        serde_json::from_slice(&manifest).map_err(|e| unusable(format!("bad manifest: {e}")))?;
    if manifest.wheel_sha256 != pin.sha256 || !manifest.files.contains_key(pin.library) {
        return Err(unusable(format!("it is not from {}", pin.wheel)));
    }
    for (name, expected) in &manifest.files {
        let path = dir.join(name);
        match sha256_file(&path) {
            Ok(actual) if &actual == expected => {}
            Ok(_) => return Err(unusable(format!("{name} is corrupted (SHA-256 mismatch)"))),
            Err(e) => return Err(unusable(format!("{name}: {e}"))),
        }
    }
    Ok(Some(dir.join(pin.library)))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;
    use crate::runtimes::runtime::Runtime;

    /// A small wheel-shaped zip: the library, a license, and a file that is not kept.
    pub(crate) fn fake_wheel(dir: &Path) -> (PathBuf, Pin) {
        let path = dir.join("onnxruntime-test.whl");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        let options = zip::write::FileOptions::default();
        for (name, body) in [
            ("onnxruntime/capi/libonnxruntime.so.1.32.0", "library"),
            ("onnxruntime/LICENSE", "license"),
            ("onnxruntime/capi/onnxruntime_pybind11_state.so", "python"),
        ] {
            zip.start_file(name, options).unwrap();
            zip.write_all(body.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        let sha256 = sha256_file(&path).unwrap();
        let size = fs::metadata(&path).unwrap().len();
        let pin = Pin {
            runtime: Runtime::OnnxRuntime,
            platform: "test-platform",
            pip_platform: "test",
            wheel: "onnxruntime-test.whl",
            size,
            sha256: Box::leak(sha256.into_boxed_str()),
            library: "onnxruntime/capi/libonnxruntime.so.1.32.0",
        };
        (path, pin)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_verified_wheel_is_installed_whole_and_only_what_is_kept() {
        let temp = tempfile::tempdir().unwrap();
        let cache = temp.path().join("cache");
        let (wheel, pin) = fake_wheel(temp.path());
        assert_eq!(verify(&cache, &pin), Ok(None), "nothing cached yet");
        let library = install(&wheel, &pin, &cache).unwrap();
        assert_eq!(fs::read_to_string(&library).unwrap(), "library");
        let dir = install_dir(&cache, &pin);
        // No temporary folder is left beside the install.
        assert_eq!(entries(&cache), ["onnxruntime-1.32.0-test-platform"]);
        assert_eq!(entries(&dir), ["manifest.json", "onnxruntime"]);
        assert!(
            dir.join("onnxruntime/LICENSE").is_file(),
            "licenses are kept"
        );
        assert!(!dir
            .join("onnxruntime/capi/onnxruntime_pybind11_state.so")
            .exists());
        assert_eq!(verify(&cache, &pin), Ok(Some(library)));
    }

    #[test]
    fn a_wheel_with_another_hash_is_refused_and_leaves_nothing() {
        let temp = tempfile::tempdir().unwrap();
        let cache = temp.path().join("cache");
        let (wheel, mut pin) = fake_wheel(temp.path());
        pin.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
        let error = install(&wheel, &pin, &cache).unwrap_err();
        assert!(
            error.contains("refused") && error.contains("SHA-256"),
            "{error}"
        );
        assert!(!cache.exists() || entries(&cache).is_empty());
    }

    #[test]
    fn a_wheel_of_another_size_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let (wheel, mut pin) = fake_wheel(temp.path());
        pin.size += 1;
        let error = install(&wheel, &pin, &temp.path().join("cache")).unwrap_err();
        assert!(error.contains("bytes"), "{error}");
    }

    #[test]
    fn a_corrupted_cached_file_is_refused_and_reinstalling_repairs_it() {
        let temp = tempfile::tempdir().unwrap();
        let cache = temp.path().join("cache");
        let (wheel, pin) = fake_wheel(temp.path());
        let library = install(&wheel, &pin, &cache).unwrap();
        fs::write(&library, "librarz").unwrap();
        let error = verify(&cache, &pin).unwrap_err();
        assert!(error.contains("corrupted"), "{error}");
        assert_eq!(install(&wheel, &pin, &cache), Ok(library.clone()));
        assert_eq!(verify(&cache, &pin), Ok(Some(library.clone())));
        fs::remove_file(install_dir(&cache, &pin).join("onnxruntime/LICENSE")).unwrap();
        assert!(
            verify(&cache, &pin).is_err(),
            "a missing file is refused too"
        );
        assert_eq!(install(&wheel, &pin, &cache), Ok(library.clone()));
        assert_eq!(verify(&cache, &pin), Ok(Some(library)));
    }
}
