//! Where the graph runtimes' libraries (ONNX Runtime, OpenVINO) come from: found on the machine
//! ([`discover`]: the `*_DYLIB_PATH` variable, sprig's cache, the active Python environment,
//! the system library paths, in that order) or fetched once from their pinned PyPI wheels into
//! a cache shared by all data dirs ([`fetch`], [`cache`]). The plugins load what is found here.

pub mod cache;
pub mod discover;
pub mod fetch;
pub mod pins;

use std::path::PathBuf;
use std::sync::OnceLock;

pub use discover::{Discovery, Found, Source};

/// A runtime sprig can load at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    OnnxRuntime,
    OpenVino,
}

impl Runtime {
    /// In the order `auto` prefers them.
    pub const ALL: [Runtime; 2] = [Runtime::OpenVino, Runtime::OnnxRuntime];

    /// The backend's name, which is also its Python package's.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::OnnxRuntime => "onnxruntime",
            Runtime::OpenVino => "openvino",
        }
    }

    /// The variable that names the library explicitly (it wins over everything else).
    pub fn dylib_env(self) -> &'static str {
        match self {
            Runtime::OnnxRuntime => "ORT_DYLIB_PATH",
            Runtime::OpenVino => "OPENVINO_DYLIB_PATH",
        }
    }

    /// The pinned package version sprig fetches.
    pub fn version(self) -> &'static str {
        match self {
            Runtime::OnnxRuntime => "1.32.0",
            Runtime::OpenVino => "2026.4.1",
        }
    }

    /// The folder of the library inside the Python package.
    fn package_dir(self) -> &'static str {
        match self {
            Runtime::OnnxRuntime => "onnxruntime/capi",
            Runtime::OpenVino => "openvino/libs",
        }
    }

    /// Whether `file_name` is the library to load (`libonnxruntime.so.1.32.0`,
    /// `libopenvino_c.2641.dylib`).
    fn is_library(self, file_name: &str) -> bool {
        let stem = match self {
            Runtime::OnnxRuntime => "libonnxruntime.",
            Runtime::OpenVino => "libopenvino_c.",
        };
        file_name.strip_prefix(stem).is_some_and(|rest| {
            rest.starts_with("so.") || (rest.ends_with("dylib") && cfg!(target_os = "macos"))
        })
    }

    /// The runtime of a backend name.
    pub fn of_backend(name: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.name() == name)
    }
}

static CACHE_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Sets the cache dir for this process (from `runtimes.cache_dir`); an empty path keeps the
/// default. Only the first call counts: the libraries are loaded once per process.
pub fn use_cache_dir(dir: PathBuf) {
    if !dir.as_os_str().is_empty() {
        let _ = CACHE_DIR.set(dir);
    }
}

/// The cache dir in use: the configured one, else the user's cache dir
/// (`$XDG_CACHE_HOME/sprig/runtimes`, `~/.cache/sprig/runtimes`, on macOS
/// `~/Library/Caches/sprig/runtimes`), else `./sprig-runtimes`.
pub fn cache_dir() -> PathBuf {
    CACHE_DIR.get().cloned().unwrap_or_else(default_cache_dir)
}

fn default_cache_dir() -> PathBuf {
    let env_dir = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let user_cache = if cfg!(target_os = "macos") {
        env_dir("HOME").map(|home| home.join("Library/Caches"))
    } else {
        env_dir("XDG_CACHE_HOME").or_else(|| env_dir("HOME").map(|home| home.join(".cache")))
    };
    user_cache.map_or_else(
        || PathBuf::from("sprig-runtimes"),
        |dir| dir.join("sprig/runtimes"),
    )
}

/// Where this process loads `runtime` from: discovered once, on first use (the plugins load
/// their library once per process, so later changes cannot apply anyway).
pub fn selected(runtime: Runtime) -> Result<Found, String> {
    static FOUND: OnceLock<[Result<Found, String>; 2]> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let discovery = Discovery::from_environment(cache_dir());
        [
            discovery.locate(Runtime::OnnxRuntime),
            discovery.locate(Runtime::OpenVino),
        ]
    });
    found[runtime as usize].clone()
}

/// Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX; read from /proc/cpuinfo),
/// where OpenVINO is the fastest runtime.
pub fn cpu_has_native_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|cpuinfo| {
        cpuinfo
            .split_whitespace()
            .any(|flag| flag == "avx512_bf16" || flag == "amx_bf16")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names_are_recognised() {
        assert!(Runtime::OnnxRuntime.is_library("libonnxruntime.so.1.32.0"));
        assert!(!Runtime::OnnxRuntime.is_library("libonnxruntime_providers_shared.so"));
        assert!(Runtime::OpenVino.is_library("libopenvino_c.so.2641"));
        assert!(!Runtime::OpenVino.is_library("libopenvino.so.2641"));
        assert_eq!(Runtime::of_backend("openvino"), Some(Runtime::OpenVino));
        assert_eq!(Runtime::of_backend("flex"), None);
    }
}
