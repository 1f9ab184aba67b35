//! Where the graph runtimes' libraries (ONNX Runtime, OpenVINO) come from: found on the machine
//! ([`discover`]: the `*_DYLIB_PATH` variable, sprig's cache, the active Python environment,
//! the system library paths, in that order) or fetched once from their pinned PyPI wheels into
//! a cache shared by all data dirs ([`fetch`], [`cache`]). The plugins load what is found here.

pub mod cache;
pub mod discover;
pub mod fetch;
pub mod pins;
mod runtime;

use std::path::PathBuf;
use std::sync::OnceLock;

pub use discover::{Discovery, Found, Source};
pub use runtime::Runtime;

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
    cpu_has_any_flag(&["avx512_bf16", "amx_bf16"])
}

/// Whether the CPU has int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX), where
/// OpenVINO's int8 convolutions beat bfloat16 (1.31× on MobileNetV2, `backends/BENCHMARKS.md`).
pub fn cpu_has_int8_dot_product() -> bool {
    cpu_has_any_flag(&["avx512_vnni", "avx_vnni", "amx_int8"])
}

/// Whether OpenVINO is the fastest runtime on this CPU (native bfloat16 or int8 dot products),
/// so `auto` wants it.
pub fn cpu_favours_openvino() -> bool {
    cpu_has_native_bf16() || cpu_has_int8_dot_product()
}

fn cpu_has_any_flag(flags: &[&str]) -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .is_ok_and(|cpuinfo| cpuinfo.split_whitespace().any(|flag| flags.contains(&flag)))
}
