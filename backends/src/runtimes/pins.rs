//! The runtime wheels sprig fetches: one per runtime and platform, pinned by file name, size and
//! SHA-256 (all cp312 builds, so the pin does not move with the local Python). A wheel whose
//! hash differs is refused.

use super::runtime::Runtime;

/// One pinned wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    pub runtime: Runtime,
    /// `<os>-<arch>` as Rust names them (`linux-x86_64`).
    pub platform: &'static str,
    /// The wheel's platform tag, as pip's `--platform` takes it.
    pub pip_platform: &'static str,
    pub wheel: &'static str,
    pub size: u64,
    pub sha256: &'static str,
    /// The library to load, as a path inside the wheel.
    pub library: &'static str,
}

/// Every pinned wheel; the versions are the ones CI and the Docker image test with.
pub const PINS: &[Pin] = &[
    Pin {
        runtime: Runtime::OnnxRuntime,
        platform: "linux-x86_64",
        pip_platform: "manylinux_2_28_x86_64",
        wheel: "onnxruntime-1.32.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        size: 27_780_211,
        sha256: "99e1074c4b2197accd5073052a465361be17b89c093b8ffb6e6bd8f986c52df8",
        library: "onnxruntime/capi/libonnxruntime.so.1.32.0",
    },
    Pin {
        runtime: Runtime::OnnxRuntime,
        platform: "linux-aarch64",
        pip_platform: "manylinux_2_28_aarch64",
        wheel: "onnxruntime-1.32.0-cp312-cp312-manylinux_2_28_aarch64.whl",
        size: 23_196_724,
        sha256: "e36c187006e7a7c8b8d6d57f1a209dd63f52430dca6c282b177718ad6b841054",
        library: "onnxruntime/capi/libonnxruntime.so.1.32.0",
    },
    Pin {
        runtime: Runtime::OnnxRuntime,
        platform: "macos-aarch64",
        pip_platform: "macosx_14_0_arm64",
        wheel: "onnxruntime-1.32.0-cp312-cp312-macosx_14_0_arm64.whl",
        size: 22_519_308,
        sha256: "d52510bbbcc880c13b826f7d75cdf33ac5cf0bb864d960000fc29ce73f0cb83e",
        library: "onnxruntime/capi/libonnxruntime.1.32.0.dylib",
    },
    Pin {
        runtime: Runtime::OpenVino,
        platform: "linux-x86_64",
        pip_platform: "manylinux_2_28_x86_64",
        wheel: "openvino-2026.4.1-22982-cp312-cp312-manylinux_2_28_x86_64.whl",
        size: 59_144_434,
        sha256: "6b4375c17ddcac83a5180349e2e2bb811185c261066e2a920659892d58ef0e3b",
        library: "openvino/libs/libopenvino_c.so.2641",
    },
    Pin {
        runtime: Runtime::OpenVino,
        platform: "linux-aarch64",
        pip_platform: "manylinux_2_35_aarch64",
        wheel: "openvino-2026.4.1-22982-cp312-cp312-manylinux_2_35_aarch64.whl",
        size: 30_332_437,
        sha256: "82efccb2f9f1bdc7e5a1996e05a3b719ebff9232dd54b44150d6d2e983a86b7d",
        library: "openvino/libs/libopenvino_c.so.2641",
    },
    Pin {
        runtime: Runtime::OpenVino,
        platform: "macos-aarch64",
        pip_platform: "macosx_11_0_arm64",
        wheel: "openvino-2026.4.1-22982-cp312-cp312-macosx_11_0_arm64.whl",
        size: 33_341_733,
        sha256: "726ac547b8474a5e7b145bc1ae5a8bb6fbcbb60b79bd9a611c67eec2c74b7a5f",
        library: "openvino/libs/libopenvino_c.2641.dylib",
    },
];

/// This machine's `<os>-<arch>`.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The pinned wheel of `runtime` for this platform, or why there is none.
pub fn pin_here(runtime: Runtime) -> Result<&'static Pin, String> {
    let platform = platform();
    PINS.iter()
        .find(|pin| pin.runtime == runtime && pin.platform == platform)
        .ok_or_else(|| {
            format!(
                "no pinned {} wheel for {platform} (sprig fetches for linux-x86_64, \
                 linux-aarch64 and macos-aarch64); install the library and set {}",
                runtime.name(),
                runtime.dylib_env()
            )
        })
}

/// Whether a file of the wheel is kept: the shared libraries the runtime loads (OpenVINO's CPU
/// plugin and ONNX frontend, not its GPU/NPU plugins or other frontends, as in the Docker image)
/// and the license files.
pub fn keeps(runtime: Runtime, path: &str) -> bool {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let license = name.contains("LICENSE")
        || name.contains("ThirdPartyNotices")
        || dir.ends_with(".dist-info/licenses/licensing");
    let library = name.starts_with("lib") && !name.ends_with(".pc");
    match runtime {
        Runtime::OnnxRuntime => license || (dir == "onnxruntime/capi" && library),
        Runtime::OpenVino => {
            let unused = ["_gpu_plugin", "_npu_plugin"]
                .iter()
                .any(|part| name.contains(part))
                || (name.contains("_frontend") && !name.contains("_onnx_frontend"));
            license || (dir == "openvino/libs" && library && !unused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runtime_has_a_pin_per_platform_at_its_version() {
        for runtime in Runtime::ALL {
            for platform in ["linux-x86_64", "linux-aarch64", "macos-aarch64"] {
                let pin = PINS
                    .iter()
                    .find(|p| p.runtime == runtime && p.platform == platform)
                    .unwrap_or_else(|| panic!("{} {platform}", runtime.name()));
                let prefix = format!("{}-{}-", runtime.name(), runtime.version());
                assert!(pin.wheel.starts_with(&prefix), "{}", pin.wheel);
                assert!(pin.wheel.contains(pin.pip_platform), "{}", pin.wheel);
                assert_eq!(pin.sha256.len(), 64);
                assert!(keeps(runtime, pin.library), "{}", pin.library);
            }
        }
    }

    #[test]
    fn only_libraries_and_licenses_are_kept() {
        let ort = Runtime::OnnxRuntime;
        assert!(keeps(
            ort,
            "onnxruntime/capi/libonnxruntime_providers_shared.so"
        ));
        assert!(keeps(ort, "onnxruntime/ThirdPartyNotices.txt"));
        assert!(!keeps(
            ort,
            "onnxruntime/capi/onnxruntime_pybind11_state.so"
        ));
        let ov = Runtime::OpenVino;
        assert!(keeps(ov, "openvino/libs/libopenvino_intel_cpu_plugin.so"));
        assert!(keeps(ov, "openvino/libs/libopenvino_onnx_frontend.so.2641"));
        assert!(keeps(ov, "openvino/libs/libtbb.so.12"));
        assert!(keeps(
            ov,
            "openvino-2026.4.1.dist-info/licenses/licensing/onetbb_third-party-programs.txt"
        ));
        assert!(!keeps(ov, "openvino/libs/libopenvino_intel_gpu_plugin.so"));
        assert!(!keeps(
            ov,
            "openvino/libs/libopenvino_pytorch_frontend.so.2641"
        ));
        assert!(!keeps(ov, "openvino/libs/cache.json"));
        assert!(!keeps(ov, "openvino/libs/tbb.pc"));
    }
}
