//! The `onnxruntime` plugin: the backbone is exported to ONNX ([`crate::onnx_export`], batch
//! norms folded) and run by ONNX Runtime; the small classifier head stays on burn's flex device,
//! where it is also trained.
//!
//! The ONNX Runtime shared library is not linked: it is loaded at run time from the path in
//! `ORT_DYLIB_PATH` (for example `libonnxruntime.so.1.32.0` from PyPI's `onnxruntime` wheel; see
//! `backends/BENCHMARKS.md`). Without it the plugin's probe fails with a message saying so.

use std::sync::{Mutex, OnceLock};

use burn::tensor::Device;
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use crate::error::BackendError;
use crate::fine_tune::{FineTuneConfig, ImageSource};
use crate::network::{load_backbone, BackboneKind, FEATURE_DIM};
use crate::onnx_export::{export, input_tensor, self_test_model, INPUT_NAME, OUTPUT_NAME};
use crate::plugin::{
    guarded, BackendPlugin, BurnPlugin, Classifier, FeatureExtractor, HeadClassifier,
    ModelArtifact, TrainedArtifact,
};
use crate::preprocess::{PreparedImage, INPUT_SIZE};
use crate::training::{Example, HeadTrainingConfig, TrainingObserver};

/// The environment variable naming the ONNX Runtime shared library to load.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

const NAME: &str = "onnxruntime";

/// How each ONNX Runtime session runs (defaults measured in `backends/BENCHMARKS.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtSettings {
    /// Threads one run is split over (ONNX Runtime's intra-op pool).
    pub intra_threads: usize,
    /// Whether idle pool threads spin waiting for work: a little lower latency, but CPU burnt
    /// that the server's decoding threads could use.
    pub spinning: bool,
}

impl Default for OrtSettings {
    /// One intra-op thread per available core, no spinning.
    fn default() -> Self {
        Self {
            intra_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            spinning: false,
        }
    }
}

/// Runs the backbones with ONNX Runtime (CPU execution provider).
#[derive(Debug, Clone, Default)]
pub struct OrtPlugin {
    settings: OrtSettings,
}

impl OrtPlugin {
    /// The plugin with the default [`OrtSettings`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The plugin with explicit session settings (benchmarks compare them).
    pub fn with_settings(settings: OrtSettings) -> Self {
        Self { settings }
    }

    fn session(&self, model: &[u8]) -> Result<Session, BackendError> {
        let environment = environment()?;
        Session::builder(&environment)
            .map_err(session_error)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(session_error)?
            .with_intra_threads(self.settings.intra_threads)
            .map_err(session_error)?
            // The backbone is a chain of convolutions: nothing for an inter-op pool to overlap.
            .with_inter_threads(1)
            .map_err(session_error)?
            .with_intra_op_spinning(self.settings.spinning)
            .map_err(session_error)?
            .commit_from_memory(model)
            .map_err(session_error)
    }

    fn extractor(
        &self,
        kind: BackboneKind,
        tail: Option<(usize, &[u8])>,
    ) -> Result<OrtFeatureExtractor, BackendError> {
        // The burn loader reads the shipped weights; flex is only the staging device here.
        let backbone = load_backbone(kind, tail, &Device::flex())?;
        let session = self.session(&export(&backbone))?;
        Ok(OrtFeatureExtractor {
            kind,
            session: Mutex::new(session),
        })
    }
}

fn session_error(error: impl std::fmt::Display) -> BackendError {
    BackendError::Inference(format!("ONNX Runtime session: {error}"))
}

/// The process-wide ONNX Runtime environment (ONNX Runtime allows one), created on first use
/// from the library in `ORT_DYLIB_PATH`. A failure is remembered: the library cannot appear
/// later in the same process.
fn environment() -> Result<Environment, BackendError> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = std::env::var_os(DYLIB_ENV)
                .filter(|path| !path.is_empty())
                .ok_or_else(|| {
                    format!(
                        "{DYLIB_ENV} is not set; point it at libonnxruntime.so.1.x (e.g. from \
                         the PyPI `onnxruntime` wheel, see backends/BENCHMARKS.md)"
                    )
                })?;
            // Loading runs foreign initialisers; a panic inside `ort` becomes an error.
            guarded(|| {
                ort::init_from(&path)
                    .map_err(|e| e.to_string())?
                    .with_name("sprig")
                    .build()
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| e.to_string())?
        })
        .clone()
        .map_err(|reason| BackendError::Unavailable {
            name: NAME.into(),
            reason,
        })
}

impl BackendPlugin for OrtPlugin {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_accelerator(&self) -> bool {
        false
    }

    /// Loads the library and runs a one-node model: `Clip(0, 6)` of `[-1, 2, 9]` is `[0, 2, 6]`.
    fn probe(&self) -> Result<(), BackendError> {
        let unavailable = |reason: String| BackendError::Unavailable {
            name: NAME.into(),
            reason,
        };
        environment()?;
        let values = guarded(|| -> Result<Vec<f32>, String> {
            let mut session = self
                .session(&self_test_model())
                .map_err(|e| e.to_string())?;
            let input = [-1.0f32, 2.0, 9.0];
            let tensor =
                TensorRef::from_array_view(([1usize, 3], &input[..])).map_err(|e| e.to_string())?;
            let outputs = session
                .run(ort::inputs![INPUT_NAME => tensor])
                .map_err(|e| e.to_string())?;
            let (_, values) = outputs[OUTPUT_NAME]
                .try_extract_tensor::<f32>()
                .map_err(|e| e.to_string())?;
            Ok(values.to_vec())
        })
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(|e| unavailable(format!("self-test failed: {e}")))?;
        if values != [0.0, 2.0, 6.0] {
            return Err(unavailable(format!("self-test computed {values:?}")));
        }
        Ok(())
    }

    fn feature_extractor(
        &self,
        kind: BackboneKind,
    ) -> Result<Box<dyn FeatureExtractor>, BackendError> {
        Ok(Box::new(self.extractor(kind, None)?))
    }

    fn load(&self, artifact: &ModelArtifact) -> Result<Box<dyn Classifier>, BackendError> {
        let extractor = self.extractor(artifact.backbone, artifact.tail_ref())?;
        Ok(Box::new(HeadClassifier::load(
            extractor,
            artifact,
            Device::flex(),
        )?))
    }

    /// Head training runs on cached features, so it is burn flex's job (about 1 ms a batch).
    fn train(
        &self,
        backbone: BackboneKind,
        classes: &[String],
        train: &[Example],
        validation: &[Example],
        config: &HeadTrainingConfig,
        initial_head: Option<&[u8]>,
        observer: &mut dyn TrainingObserver,
    ) -> Result<TrainedArtifact, BackendError> {
        BurnPlugin::flex().train(
            backbone,
            classes,
            train,
            validation,
            config,
            initial_head,
            observer,
        )
    }
    /// Fine-tuning needs gradients, which ONNX Runtime inference sessions do not give: flex trains.
    fn fine_tune(
        &self,
        base: &ModelArtifact,
        train: ImageSource<'_>,
        validation: ImageSource<'_>,
        config: &FineTuneConfig,
        observer: &mut dyn TrainingObserver,
    ) -> Result<TrainedArtifact, BackendError> {
        BurnPlugin::flex().fine_tune(base, train, validation, config, observer)
    }
}

/// One ONNX Runtime session for one backbone.
struct OrtFeatureExtractor {
    kind: BackboneKind,
    /// `ort` runs take `&mut Session`; concurrent callers queue here, which costs nothing on a
    /// CPU the intra-op pool already keeps busy (and the server batches requests upstream).
    session: Mutex<Session>,
}

impl FeatureExtractor for OrtFeatureExtractor {
    fn backbone(&self) -> BackboneKind {
        self.kind
    }

    fn features(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, BackendError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let input = input_tensor(self.kind, images);
        let shape = [images.len(), 3, INPUT_SIZE, INPUT_SIZE];
        let failed = |e: ort::Error| BackendError::Inference(format!("ONNX Runtime: {e}"));
        let mut session = self
            .session
            .lock()
            // A panic mid-run cannot leave the session half-updated in a way we rely on.
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session
            .run(ort::inputs![
                INPUT_NAME => TensorRef::from_array_view((shape, &input[..])).map_err(failed)?
            ])
            .map_err(failed)?;
        let (_, values) = outputs[OUTPUT_NAME]
            .try_extract_tensor::<f32>()
            .map_err(failed)?;
        Ok(values.chunks(FEATURE_DIM).map(<[f32]>::to_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With `ORT_DYLIB_PATH` set the library must load and run the self-test; without it the
    /// error must say what to set (the numeric checks live in `tests/imagenet_port.rs`).
    #[test]
    fn probe_runs_the_self_test_or_names_the_variable() {
        match (std::env::var_os(DYLIB_ENV), OrtPlugin::new().probe()) {
            (Some(_), result) => result.unwrap(),
            (None, Err(BackendError::Unavailable { name, reason })) => {
                assert_eq!(name, NAME);
                assert!(reason.contains(DYLIB_ENV), "{reason}");
                eprintln!("onnxruntime skipped: set {DYLIB_ENV} to run it");
            }
            (None, Ok(())) => panic!("probe passed without {DYLIB_ENV}"),
            (None, Err(other)) => panic!("unexpected error {other}"),
        }
    }
}
