//! Finding a runtime's library, in order: the `*_DYLIB_PATH` variable (it always wins), sprig's
//! cache (re-verified), the active Python environment's package, the system library paths.

use std::fmt;
use std::path::{Path, PathBuf};

use super::runtime::Runtime;
use super::{cache, pins};

/// Where a library was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Variable(&'static str),
    Cache,
    Python,
    System,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Variable(name) => write!(f, "{name}"),
            Source::Cache => f.write_str("sprig's cache"),
            Source::Python => f.write_str("the Python environment"),
            Source::System => f.write_str("a system library path"),
        }
    }
}

/// A library found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub source: Source,
    /// The package version where it is known, else the library file's own version suffix.
    pub version: String,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (from {}, version {})",
            self.path.display(),
            self.source,
            self.version
        )
    }
}

/// The places to look in.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub cache_dir: PathBuf,
    /// The `*_DYLIB_PATH` variables that are set (an empty value counts as unset).
    pub variables: Vec<(&'static str, PathBuf)>,
    /// The Python environment's package folders.
    pub python_sites: Vec<PathBuf>,
    pub system_dirs: Vec<PathBuf>,
}

impl Discovery {
    /// This process's environment, with `cache_dir` as sprig's cache.
    pub fn from_environment(cache_dir: PathBuf) -> Self {
        let variables = Runtime::ALL
            .iter()
            .filter_map(|runtime| {
                let value = std::env::var_os(runtime.dylib_env()).filter(|v| !v.is_empty())?;
                Some((runtime.dylib_env(), PathBuf::from(value)))
            })
            .collect();
        let mut system_dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
            .map(|paths| std::env::split_paths(&paths).collect())
            .unwrap_or_default();
        let triple = format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH);
        for dir in [
            "/usr/local/lib",
            "/usr/lib",
            "/usr/lib64",
            &triple,
            "/opt/homebrew/lib",
        ] {
            system_dirs.push(dir.into());
        }
        Self {
            cache_dir,
            variables,
            python_sites: python_sites(),
            system_dirs,
        }
    }

    /// Where `runtime`'s library is, or every place looked in and why it was not usable there.
    pub fn locate(&self, runtime: Runtime) -> Result<Found, String> {
        let variable = runtime.dylib_env();
        if let Some((_, path)) = self.variables.iter().find(|(name, _)| *name == variable) {
            return if path.is_file() {
                Ok(Found {
                    version: file_version(path),
                    path: path.clone(),
                    source: Source::Variable(variable),
                })
            } else {
                Err(format!(
                    "{variable} is {}, which is not a file",
                    path.display()
                ))
            };
        }
        let mut misses = vec![format!("{variable} is not set")];
        match pins::pin_here(runtime).and_then(|pin| cache::verify(&self.cache_dir, pin)) {
            Ok(Some(path)) => {
                return Ok(Found {
                    path,
                    source: Source::Cache,
                    version: runtime.version().into(),
                })
            }
            Ok(None) => misses.push(format!("not in sprig's cache {}", self.cache_dir.display())),
            Err(why) => misses.push(why),
        }
        for site in &self.python_sites {
            if let Some(path) = library_in(runtime, &site.join(runtime.package_dir())) {
                return Ok(Found {
                    version: package_version(runtime, site).unwrap_or_else(|| file_version(&path)),
                    path,
                    source: Source::Python,
                });
            }
        }
        misses.push(format!(
            "no `{}` package in the Python environment",
            runtime.name()
        ));
        for dir in &self.system_dirs {
            if let Some(path) = library_in(runtime, dir) {
                return Ok(Found {
                    version: file_version(&path),
                    path,
                    source: Source::System,
                });
            }
        }
        misses.push("not in the system library paths".into());
        Err(misses.join("; "))
    }
}

/// The active Python's package folders (a virtual environment's when one is active); none
/// without python3.
fn python_sites() -> Vec<PathBuf> {
    let script =
        "import site\nprint('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))";
    std::process::Command::new("python3")
        .args(["-c", script])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

fn library_in(runtime: Runtime, dir: &Path) -> Option<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| runtime.is_library(&entry.file_name().to_string_lossy()))
        .map(|entry| entry.path())
        .collect();
    names.sort();
    names.pop()
}

/// The version in the package's `<name>-<version>.dist-info` folder.
fn package_version(runtime: Runtime, site: &Path) -> Option<String> {
    std::fs::read_dir(site).ok()?.find_map(|entry| {
        let name = entry.ok()?.file_name().to_string_lossy().into_owned();
        let version = name
            .strip_prefix(runtime.name())?
            .strip_prefix('-')?
            .strip_suffix(".dist-info")?;
        Some(version.to_string())
    })
}

/// The version suffix of a library's file name (`libonnxruntime.so.1.32.0` → `1.32.0`).
fn file_version(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.split_once(".so.")
        .map(|(_, version)| version.to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "library").unwrap();
    }

    /// The variable wins over a Python package, which wins over the system paths; without any
    /// of them, every place looked in is named.
    #[test]
    fn discovery_follows_its_order_and_names_every_miss() {
        let temp = tempfile::tempdir().unwrap();
        let site = temp.path().join("site-packages");
        let python_library = site.join("onnxruntime/capi/libonnxruntime.so.1.31.0");
        touch(&python_library);
        fs::create_dir_all(site.join("onnxruntime-1.31.0.dist-info")).unwrap();
        let system = temp.path().join("lib");
        touch(&system.join("libonnxruntime.so.1.30.1"));
        let explicit = temp.path().join("mine.so");
        touch(&explicit);
        let mut discovery = Discovery {
            cache_dir: temp.path().join("cache"),
            variables: vec![("ORT_DYLIB_PATH", explicit.clone())],
            python_sites: vec![temp.path().join("elsewhere"), site],
            system_dirs: vec![system.clone()],
        };
        let found = discovery.locate(Runtime::OnnxRuntime).unwrap();
        assert_eq!(
            (found.path, found.source),
            (explicit, Source::Variable("ORT_DYLIB_PATH"))
        );

        discovery.variables.clear();
        let found = discovery.locate(Runtime::OnnxRuntime).unwrap();
        assert_eq!(found.path, python_library);
        assert_eq!(
            (found.source, found.version.as_str()),
            (Source::Python, "1.31.0")
        );

        discovery.python_sites.clear();
        let found = discovery.locate(Runtime::OnnxRuntime).unwrap();
        assert_eq!(
            (found.source, found.version.as_str()),
            (Source::System, "1.30.1")
        );

        let error = discovery.locate(Runtime::OpenVino).unwrap_err();
        for miss in [
            "OPENVINO_DYLIB_PATH is not set",
            "Python environment",
            "system library",
        ] {
            assert!(error.contains(miss), "{error}");
        }
    }

    /// A verified cached copy comes before a Python package; a corrupted one is refused with
    /// its reason and discovery goes on.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn the_cache_is_used_only_while_it_verifies() {
        let temp = tempfile::tempdir().unwrap();
        let (wheel, fake) = cache::tests::fake_wheel(temp.path());
        // Installed as this platform's pin would be, so discovery finds it.
        let pin = pins::Pin {
            sha256: fake.sha256,
            size: fake.size,
            ..*pins::pin_here(Runtime::OnnxRuntime).unwrap()
        };
        let cache_dir = temp.path().join("cache");
        // The fake wheel's hash is not the real pin's: discovery sees a stale copy. Write the
        // real pin's hash into the manifest instead, as a real fetch would have.
        let library = cache::install(&wheel, &pin, &cache_dir).unwrap();
        let manifest = cache::install_dir(&cache_dir, &pin).join("manifest.json");
        let text = fs::read_to_string(&manifest).unwrap().replace(
            fake.sha256,
            pins::pin_here(Runtime::OnnxRuntime).unwrap().sha256,
        );
        fs::write(&manifest, text).unwrap();
        let site = temp.path().join("site-packages");
        touch(&site.join("onnxruntime/capi/libonnxruntime.so.1.31.0"));
        let discovery = Discovery {
            cache_dir,
            python_sites: vec![site],
            ..Discovery::default()
        };
        let found = discovery.locate(Runtime::OnnxRuntime).unwrap();
        assert_eq!((found.path, found.source), (library.clone(), Source::Cache));

        fs::write(&library, "corrupted").unwrap();
        let found = discovery.locate(Runtime::OnnxRuntime).unwrap();
        assert_eq!(
            found.source,
            Source::Python,
            "the corrupted copy is passed over"
        );
        let mut discovery = discovery;
        discovery.python_sites.clear();
        let error = discovery.locate(Runtime::OnnxRuntime).unwrap_err();
        assert!(error.contains("corrupted"), "{error}");
    }
}
