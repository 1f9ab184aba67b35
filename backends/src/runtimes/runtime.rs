//! The runtimes sprig can load, and what it knows of each.

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
    pub(super) fn package_dir(self) -> &'static str {
        match self {
            Runtime::OnnxRuntime => "onnxruntime/capi",
            Runtime::OpenVino => "openvino/libs",
        }
    }

    /// Whether `file_name` is the library to load (`libonnxruntime.so.1.32.0`,
    /// `libopenvino_c.2641.dylib`).
    pub(super) fn is_library(self, file_name: &str) -> bool {
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
