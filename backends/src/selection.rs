//! Choosing the backend plugin at start-up: what a config may ask for, what `auto` prefers and
//! why, and every plugin that can run here.

use crate::burn_plugin::BurnPlugin;
use crate::error::BackendError;
use crate::onnxruntime::OnnxRuntimeOptions;
#[cfg(feature = "onnxruntime")]
use crate::onnxruntime::OrtPlugin;
use crate::openvino::OpenVinoOptions;
#[cfg(feature = "openvino")]
use crate::openvino::OpenVinoPlugin;
use crate::plugin::BackendPlugin;
#[cfg(any(feature = "onnxruntime", feature = "openvino"))]
use crate::runtimes::{selected, Runtime};

/// The backend names a config may ask for.
pub const BACKEND_CHOICES: &[&str] =
    &["auto", "flex", "ndarray", "wgpu", "onnxruntime", "openvino"];

/// Every plugin compiled into this binary that passes its probe here (burn's first).
pub fn available_plugins() -> Vec<Box<dyn BackendPlugin>> {
    let mut plugins: Vec<Box<dyn BackendPlugin>> = BurnPlugin::available()
        .into_iter()
        .map(|plugin| Box::new(plugin) as Box<dyn BackendPlugin>)
        .collect();
    #[cfg(feature = "onnxruntime")]
    plugins.push(Box::new(OrtPlugin::new()));
    #[cfg(feature = "openvino")]
    plugins.push(Box::new(OpenVinoPlugin::default()));
    plugins.retain(|plugin| plugin.probe().is_ok());
    plugins
}

/// The plugin chosen at start-up and why.
pub struct Selection {
    pub plugin: Box<dyn BackendPlugin>,
    pub reason: String,
}

/// How the graph-runtime plugins run a model (config sections `[onnxruntime]`, `[openvino]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    pub onnxruntime: OnnxRuntimeOptions,
    pub openvino: OpenVinoOptions,
}

/// Picks the backend for `requested` (one of [`BACKEND_CHOICES`]).
///
/// `auto` prefers wgpu when it is compiled in and a real GPU adapter answers; then OpenVINO when
/// it is compiled in, its library loads and it computes in bfloat16 here (about 1.6× ONNX
/// Runtime's float32 throughput, same accuracy); then ONNX Runtime when it is compiled in and its
/// library loads (about 3× flex's throughput on CPU, see `backends/BENCHMARKS.md`); else flex.
/// An explicitly requested backend that cannot run here is an error, not a fallback.
pub fn select_backend(
    requested: &str,
    options: &RuntimeOptions,
) -> Result<Selection, BackendError> {
    let explicit = |plugin: Box<dyn BackendPlugin>| -> Result<Selection, BackendError> {
        plugin.probe()?;
        Ok(Selection {
            reason: format!(
                "backend '{}' requested in config ({})",
                plugin.name(),
                plugin.precision()
            ),
            plugin,
        })
    };
    match requested {
        "flex" => explicit(Box::new(BurnPlugin::flex())),
        "ndarray" => explicit(Box::new(BurnPlugin::ndarray())),
        #[cfg(feature = "wgpu")]
        "wgpu" => explicit(Box::new(BurnPlugin::wgpu())),
        #[cfg(feature = "onnxruntime")]
        "onnxruntime" => explicit(Box::new(OrtPlugin::with_options(&options.onnxruntime))),
        #[cfg(feature = "openvino")]
        "openvino" => explicit(Box::new(OpenVinoPlugin::with_options(&options.openvino))),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => Err(not_compiled_in("wgpu")),
        #[cfg(not(feature = "onnxruntime"))]
        "onnxruntime" => Err(not_compiled_in("onnxruntime")),
        #[cfg(not(feature = "openvino"))]
        "openvino" => Err(not_compiled_in("openvino")),
        "auto" => Ok(auto_select(options)),
        other => Err(BackendError::UnknownBackend(other.into())),
    }
}

#[cfg(any(
    not(feature = "wgpu"),
    not(feature = "onnxruntime"),
    not(feature = "openvino")
))]
fn not_compiled_in(name: &str) -> BackendError {
    BackendError::Unavailable {
        name: name.into(),
        reason: format!("this binary was built without the `{name}` cargo feature"),
    }
}

#[cfg_attr(
    not(all(feature = "onnxruntime", feature = "openvino")),
    allow(unused_variables)
)]
fn auto_select(options: &RuntimeOptions) -> Selection {
    // Why each faster option was passed over, for the log line.
    let mut passed_over: Vec<String> = Vec::new();
    let chosen = |plugin: Box<dyn BackendPlugin>, why: String, passed_over: &[String]| {
        let mut reasons = passed_over.to_vec();
        reasons.push(why);
        Selection {
            plugin,
            reason: format!("auto: {}", reasons.join("; ")),
        }
    };
    #[cfg(feature = "wgpu")]
    match BurnPlugin::wgpu_gpu_only().probe() {
        Ok(()) => {
            return chosen(
                Box::new(BurnPlugin::wgpu_gpu_only()),
                "wgpu is compiled in and a GPU adapter answered".into(),
                &passed_over,
            )
        }
        Err(e) => passed_over.push(format!("wgpu compiled in but no GPU adapter ({e})")),
    }
    #[cfg(not(feature = "wgpu"))]
    passed_over.push("built without the wgpu feature".into());
    #[cfg(feature = "openvino")]
    {
        let openvino = OpenVinoPlugin::with_options(&options.openvino);
        match openvino
            .probe()
            .map_err(|e| e.to_string())
            .and_then(|()| Ok((openvino.runs_int8(), openvino.runs_bf16()?)))
        {
            Ok((int8, bf16)) if int8 || bf16 => {
                let library = library_description(Runtime::OpenVino);
                let precision = match (int8, bf16) {
                    (true, true) => {
                        "MobileNetV2 in int8 on its QAT grid (VNNI) and the rest in \
                                     bfloat16"
                    }
                    (true, false) => "MobileNetV2 in int8 on its QAT grid (VNNI)",
                    _ => "bfloat16",
                };
                return chosen(
                    Box::new(openvino),
                    format!(
                        "OpenVINO loaded from {library} and computes {precision} here; using \
                         openvino (1.6-2.1x ONNX Runtime's float32 throughput, same accuracy, \
                         see backends/BENCHMARKS.md)"
                    ),
                    &passed_over,
                );
            }
            Ok(_) => passed_over.push(
                "openvino loads but would compute in float32 here (no VNNI or native \
                 bfloat16, or openvino.precision = \"f32\"), where onnxruntime is faster"
                    .into(),
            ),
            Err(e) => passed_over.push(format!("openvino compiled in but {e}")),
        }
    }
    #[cfg(not(feature = "openvino"))]
    passed_over.push("built without the openvino feature".into());
    #[cfg(feature = "onnxruntime")]
    match OrtPlugin::with_options(&options.onnxruntime).probe() {
        Ok(()) => {
            let library = library_description(Runtime::OnnxRuntime);
            return chosen(
                Box::new(OrtPlugin::with_options(&options.onnxruntime)),
                format!(
                    "ONNX Runtime loaded from {library}; using onnxruntime (about 3x flex's \
                     throughput on CPU, see backends/BENCHMARKS.md)"
                ),
                &passed_over,
            );
        }
        Err(e) => passed_over.push(format!("onnxruntime compiled in but {e}")),
    }
    #[cfg(not(feature = "onnxruntime"))]
    passed_over.push("built without the onnxruntime feature".into());
    chosen(
        Box::new(BurnPlugin::flex()),
        "using flex (the fast burn CPU backend)".into(),
        &passed_over,
    )
}

/// Where a loaded runtime's library came from, for the selection's log line.
#[cfg(any(feature = "onnxruntime", feature = "openvino"))]
fn library_description(runtime: Runtime) -> String {
    selected(runtime).map_or_else(|e| e, |found| found.to_string())
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::artifact::ModelArtifact;
    use crate::head::untrained_head;
    use crate::network::{BackboneKind, FeatureSpec, Pooling};
    use crate::openvino::OpenVinoPrecision;
    use crate::preprocess::{PreparedImage, INPUT_SIZE};
    use crate::runtimes::{selected, Runtime};
    use crate::training::{EpochReport, Example, HeadTrainingConfig, TrainingObserver};

    /// True when this test binary can load ONNX Runtime (feature on, library found).
    fn onnxruntime_here() -> bool {
        cfg!(feature = "onnxruntime") && selected(Runtime::OnnxRuntime).is_ok()
    }

    /// True when this test binary can load OpenVINO (feature on, library found).
    fn openvino_here() -> bool {
        cfg!(feature = "openvino") && selected(Runtime::OpenVino).is_ok()
    }

    fn select(name: &str) -> Result<Selection, BackendError> {
        select_backend(name, &RuntimeOptions::default())
    }

    #[test]
    fn auto_picks_the_fastest_available_and_says_why() {
        let selection = select("auto").unwrap();
        #[cfg(not(feature = "wgpu"))]
        {
            let expected = if openvino_here() && crate::runtimes::cpu_favours_openvino() {
                "openvino"
            } else if onnxruntime_here() {
                "onnxruntime"
            } else {
                "flex"
            };
            assert_eq!(selection.plugin.name(), expected, "{}", selection.reason);
            assert!(
                selection.reason.contains("without the wgpu feature"),
                "{}",
                selection.reason
            );
        }
        #[cfg(feature = "wgpu")]
        assert!(
            ["flex", "wgpu", "onnxruntime", "openvino"].contains(&selection.plugin.name()),
            "{}",
            selection.reason
        );
    }

    #[test]
    fn explicit_backends_run_or_fail_clearly() {
        assert_eq!(select("flex").unwrap().plugin.name(), "flex");
        assert_eq!(select("ndarray").unwrap().plugin.name(), "ndarray");
        assert!(matches!(select("tpu"), Err(BackendError::UnknownBackend(name)) if name == "tpu"));
        let unavailable = |requested: &str, why: &str| match select(requested) {
            Err(BackendError::Unavailable { name, reason }) => {
                assert_eq!(name, requested);
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!(
                "expected {requested} to be unavailable, got {:?}",
                other.map(|s| s.reason)
            ),
        };
        #[cfg(not(feature = "wgpu"))]
        unavailable("wgpu", "cargo feature");
        let onnxruntime = RuntimeOptions {
            onnxruntime: OnnxRuntimeOptions {
                sessions: 3,
                intra_threads: 1,
            },
            ..RuntimeOptions::default()
        };
        let openvino = RuntimeOptions {
            openvino: OpenVinoOptions {
                streams: 3,
                intra_threads: 1,
                precision: OpenVinoPrecision::F32,
            },
            ..RuntimeOptions::default()
        };
        for (name, compiled_in, variable, here, options) in [
            (
                "onnxruntime",
                cfg!(feature = "onnxruntime"),
                "ORT_DYLIB_PATH",
                onnxruntime_here(),
                onnxruntime,
            ),
            (
                "openvino",
                cfg!(feature = "openvino"),
                "OPENVINO_DYLIB_PATH",
                openvino_here(),
                openvino,
            ),
        ] {
            if !compiled_in {
                unavailable(name, "cargo feature");
            } else if here {
                let selection = select_backend(name, &options).unwrap();
                assert_eq!(selection.plugin.name(), name);
                assert_eq!(
                    selection.plugin.parallel_runs(),
                    3,
                    "{name}: runners come from the options"
                );
                assert_eq!(selection.plugin.precision(), "f32", "{}", selection.reason);
            } else {
                unavailable(name, variable);
                crate::test_skip::skip(
                    &format!("{name} selection"),
                    "its library is not found (see `sprig runtimes`)",
                );
            }
        }
    }

    /// Every available plugin, under both poolings: features have the right width, a loaded
    /// classifier answers probability rows that sum to 1, and the same artifact loads on each
    /// plugin.
    #[test]
    fn every_plugin_extracts_features_and_classifies() {
        let image = PreparedImage::from_pixels(vec![90; INPUT_SIZE.pow(2) * 3]).unwrap();
        let device = Device::flex();
        for pooling in Pooling::ALL {
            let spec = FeatureSpec::new(BackboneKind::MobilenetV2, pooling);
            let head = untrained_head(3, &spec.head_groups(), &device);
            let artifact = ModelArtifact {
                backbone: spec.backbone,
                pooling,
                classes: vec!["a".into(), "b".into(), "c".into()],
                head,
                tail: None,
                test_time: Default::default(),
            };
            for plugin in available_plugins() {
                let features = plugin
                    .feature_extractor(spec)
                    .unwrap()
                    .features(std::slice::from_ref(&image))
                    .unwrap();
                assert_eq!(features[0].len(), spec.dim(), "{}", plugin.name());
                let probabilities = plugin
                    .load(&artifact)
                    .unwrap()
                    .predict(&[image.clone(), image.clone()])
                    .unwrap();
                assert_eq!(probabilities.len(), 2);
                let sum: f32 = probabilities[0].iter().sum();
                assert!((sum - 1.0).abs() < 1e-4, "{}: {sum}", plugin.name());

                // A head trained through the plugin loads back onto it.
                let examples: Vec<Example> = (0..4)
                    .map(|i| Example {
                        features: vec![i as f32; spec.dim()],
                        label: i % 3,
                    })
                    .collect();
                let config = HeadTrainingConfig {
                    max_epochs: 1,
                    ..HeadTrainingConfig::default()
                };
                let trained = plugin
                    .train(
                        spec,
                        &artifact.classes,
                        &examples,
                        &[],
                        &config,
                        None,
                        &mut Silent,
                    )
                    .unwrap();
                assert_eq!(trained.artifact.spec(), spec);
                let reloaded = plugin.load(&trained.artifact).unwrap();
                assert_eq!(reloaded.classify_features(&features).unwrap()[0].len(), 3);
            }
        }
    }

    struct Silent;

    impl TrainingObserver for Silent {
        fn batch_done(&mut self, _epoch: usize, _batch: usize, _batches: usize) -> bool {
            true
        }
        fn epoch_done(&mut self, _report: &EpochReport) {}
    }
}
