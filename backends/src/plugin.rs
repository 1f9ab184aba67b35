//! Backend plugins: each has a name, a probe (can it run here?) and loads model artifacts into
//! trait-object classifiers. The burn plugins share one model implementation and differ only in
//! the runtime `Device` they construct.

use std::panic::{catch_unwind, AssertUnwindSafe};

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use crate::fine_tune::{fine_tune, FineTuneConfig, ImageSource};
use crate::head::ClassifierHead;
use crate::network::{load_backbone, pixels_tensor, Backbone, BackboneKind};
#[cfg(feature = "onnxruntime")]
use crate::onnxruntime::OrtPlugin;
#[cfg(feature = "openvino")]
use crate::openvino::OpenVinoPlugin;
use crate::preprocess::PreparedImage;
#[cfg(any(feature = "onnxruntime", feature = "openvino"))]
use crate::runtimes::{selected, Runtime};
use crate::training::{train_head, Example, HeadTrainingConfig, TrainingObserver};

/// Everything needed to rebuild a trained classifier.
#[derive(Clone, PartialEq)]
pub struct ModelArtifact {
    pub backbone: BackboneKind,
    pub classes: Vec<String>,
    /// Head weights (safetensors).
    pub head: Vec<u8>,
    /// The fine-tuned end of the backbone (phase 2), if any; otherwise the shipped ImageNet
    /// backbone is used as is.
    pub tail: Option<TailWeights>,
}

/// Fine-tuned weights of a backbone's last `blocks` blocks and head convolution (safetensors of a
/// [`crate::network::BackboneTail`]).
#[derive(Clone, PartialEq)]
pub struct TailWeights {
    pub blocks: usize,
    pub weights: Vec<u8>,
}

impl ModelArtifact {
    /// The backbone's fine-tuned tail as `load_backbone` takes it.
    pub fn tail_ref(&self) -> Option<(usize, &[u8])> {
        self.tail.as_ref().map(|t| (t.blocks, t.weights.as_slice()))
    }
}

#[derive(Serialize, Deserialize)]
struct ArtifactHeader {
    backbone: BackboneKind,
    classes: Vec<String>,
    /// Length of the head weights; the tail's weights follow them.
    head_bytes: usize,
    #[serde(default)]
    tail_blocks: Option<usize>,
}

const ARTIFACT_MAGIC: &[u8; 8] = b"SPRIGMA2";

impl ModelArtifact {
    /// Self-describing bytes: magic, header length (u32 LE), JSON header, head safetensors,
    /// then the fine-tuned tail's safetensors when there is one.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&ArtifactHeader {
            backbone: self.backbone,
            classes: self.classes.clone(),
            head_bytes: self.head.len(),
            tail_blocks: self.tail.as_ref().map(|t| t.blocks),
        })
        .expect("artifact header serialises");
        let tail = self.tail.as_ref().map_or(&[][..], |t| t.weights.as_slice());
        let mut bytes = Vec::with_capacity(12 + header.len() + self.head.len() + tail.len());
        bytes.extend_from_slice(ARTIFACT_MAGIC);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&self.head);
        bytes.extend_from_slice(tail);
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BackendError> {
        let corrupt =
            |what: &str| BackendError::Artifact(format!("not a sprig model artifact ({what})"));
        let rest = bytes
            .strip_prefix(ARTIFACT_MAGIC)
            .ok_or_else(|| corrupt("magic"))?;
        let (length, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("length"))?;
        let length = u32::from_le_bytes(*length) as usize;
        if rest.len() < length {
            return Err(corrupt("header"));
        }
        let (header, weights) = rest.split_at(length);
        let header: ArtifactHeader =
            serde_json::from_slice(header).map_err(|_| corrupt("header"))?;
        if weights.len() < header.head_bytes {
            return Err(corrupt("head"));
        }
        let (head, tail) = weights.split_at(header.head_bytes);
        let tail = match header.tail_blocks {
            Some(blocks) if !tail.is_empty() => Some(TailWeights {
                blocks,
                weights: tail.to_vec(),
            }),
            None if tail.is_empty() => None,
            _ => return Err(corrupt("tail")),
        };
        Ok(Self {
            backbone: header.backbone,
            classes: header.classes,
            head: head.to_vec(),
            tail,
        })
    }
}

impl std::fmt::Debug for ModelArtifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelArtifact")
            .field("backbone", &self.backbone)
            .field("classes", &self.classes)
            .field("head_bytes", &self.head.len())
            .field("tail_blocks", &self.tail.as_ref().map(|t| t.blocks))
            .finish()
    }
}

/// Backbone features for prepared images.
pub trait FeatureExtractor: Send + Sync {
    fn backbone(&self) -> BackboneKind;
    /// One 1280-d feature vector per image.
    fn features(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, BackendError>;
}

/// A loaded, ready-to-serve classifier.
pub trait Classifier: FeatureExtractor {
    fn classes(&self) -> &[String];
    /// Class probabilities from backbone features.
    fn classify_features(&self, features: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, BackendError>;
    /// Class probabilities for a batch of images (one forward pass).
    fn predict(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, BackendError> {
        let features = self.features(images)?;
        self.classify_features(&features)
    }
}

/// Result of training a head through a plugin.
pub struct TrainedArtifact {
    pub artifact: ModelArtifact,
    pub history: Vec<crate::training::EpochReport>,
    pub best_epoch: usize,
}

/// A compute backend that can serve and train sprig models.
pub trait BackendPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// True for GPU plugins (used to pick training defaults such as fine-tuning).
    fn is_accelerator(&self) -> bool;
    /// Checks that the backend can run on this machine; never panics.
    fn probe(&self) -> Result<(), BackendError>;
    /// The number format the backbone computes in: "f32", or "bf16" where a plugin trades
    /// mantissa bits for speed (accuracy compared in `backends/BENCHMARKS.md`).
    fn precision(&self) -> &'static str {
        "f32"
    }
    /// Forward passes worth running side by side (the server starts this many inference
    /// workers unless configured): burn backends parallelise inside one pass.
    fn parallel_runs(&self) -> usize {
        1
    }
    fn feature_extractor(
        &self,
        kind: BackboneKind,
    ) -> Result<Box<dyn FeatureExtractor>, BackendError>;
    fn load(&self, artifact: &ModelArtifact) -> Result<Box<dyn Classifier>, BackendError>;
    /// Trains a head on backbone features and packages it as an artifact.
    #[allow(clippy::too_many_arguments)]
    fn train(
        &self,
        backbone: BackboneKind,
        classes: &[String],
        train: &[Example],
        validation: &[Example],
        config: &HeadTrainingConfig,
        initial_head: Option<&[u8]>,
        observer: &mut dyn TrainingObserver,
    ) -> Result<TrainedArtifact, BackendError>;
    /// Phase 2: fine-tunes the last backbone blocks with the head of the phase-1 artifact `base`.
    fn fine_tune(
        &self,
        base: &ModelArtifact,
        train: ImageSource<'_>,
        validation: ImageSource<'_>,
        config: &FineTuneConfig,
        observer: &mut dyn TrainingObserver,
    ) -> Result<TrainedArtifact, BackendError>;
}

/// Which runtime device a burn plugin builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BurnDevice {
    Flex,
    Ndarray,
    #[cfg(feature = "wgpu")]
    Wgpu {
        require_gpu: bool,
    },
}

/// A plugin running the shared burn model on one kind of device.
pub struct BurnPlugin {
    device: BurnDevice,
}

impl BurnPlugin {
    pub fn flex() -> Self {
        Self {
            device: BurnDevice::Flex,
        }
    }

    pub fn ndarray() -> Self {
        Self {
            device: BurnDevice::Ndarray,
        }
    }

    /// wgpu on the default adapter (a software Vulkan device such as lavapipe is accepted).
    #[cfg(feature = "wgpu")]
    pub fn wgpu() -> Self {
        Self {
            device: BurnDevice::Wgpu { require_gpu: false },
        }
    }

    /// wgpu only on a real (discrete or integrated) GPU: what `auto` looks for.
    #[cfg(feature = "wgpu")]
    pub fn wgpu_gpu_only() -> Self {
        Self {
            device: BurnDevice::Wgpu { require_gpu: true },
        }
    }

    /// The runtime device this plugin computes on.
    pub fn device(&self) -> Device {
        self.make_device()
    }

    /// Every burn plugin compiled into this binary that passes its probe here.
    pub fn available() -> Vec<BurnPlugin> {
        let plugins = [
            BurnPlugin::flex(),
            BurnPlugin::ndarray(),
            #[cfg(feature = "wgpu")]
            BurnPlugin::wgpu(),
        ];
        plugins.into_iter().filter(|p| p.probe().is_ok()).collect()
    }

    fn make_device(&self) -> Device {
        match self.device {
            BurnDevice::Flex => Device::flex(),
            #[allow(deprecated)] // kept selectable on purpose; documented as slow and deprecated
            BurnDevice::Ndarray => Device::ndarray(),
            #[cfg(feature = "wgpu")]
            BurnDevice::Wgpu { require_gpu } => wgpu_device(require_gpu),
        }
    }

    fn backbone(
        &self,
        kind: BackboneKind,
        tail: Option<(usize, &[u8])>,
    ) -> Result<BurnFeatureExtractor, BackendError> {
        let device = self.make_device();
        // Serving only runs the backbone forward, so its batch norms are folded away (~10% faster
        // on flex, see BENCHMARKS.md).
        let backbone =
            guarded(|| load_backbone(kind, tail, &device).map(Backbone::fold_batch_norms))??;
        Ok(BurnFeatureExtractor {
            kind,
            backbone,
            device,
        })
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device(require_gpu: bool) -> Device {
    use burn::tensor::DeviceKind;
    if require_gpu {
        // The discrete GPU if there is one, else the integrated one; never a CPU adapter.
        let discrete = Device::wgpu(DeviceKind::DiscreteGpu(0));
        if guarded(|| Tensor::<1>::zeros([1], &discrete).into_data()).is_ok() {
            return discrete;
        }
        return Device::wgpu(DeviceKind::IntegratedGpu(0));
    }
    Device::wgpu(DeviceKind::DefaultDevice)
}

/// Runs `f`, turning a panic (how burn reports e.g. a missing wgpu adapter) into an error.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, BackendError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend panicked".into());
        BackendError::Inference(reason)
    })
}

/// Runs a plugin's self-test, guarded against panics: the plugin is unavailable unless the test
/// computes `expected`.
pub(crate) fn self_test<const N: usize>(
    name: &str,
    expected: [f32; N],
    test: impl FnOnce() -> Result<Vec<f32>, String>,
) -> Result<(), BackendError> {
    let unavailable = |reason: String| BackendError::Unavailable {
        name: name.into(),
        reason,
    };
    let values = guarded(test)
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(|e| unavailable(format!("self-test failed: {e}")))?;
    if values != expected {
        return Err(unavailable(format!("self-test computed {values:?}")));
    }
    Ok(())
}

impl BackendPlugin for BurnPlugin {
    fn name(&self) -> &'static str {
        match self.device {
            BurnDevice::Flex => "flex",
            BurnDevice::Ndarray => "ndarray",
            #[cfg(feature = "wgpu")]
            BurnDevice::Wgpu { .. } => "wgpu",
        }
    }

    fn is_accelerator(&self) -> bool {
        !matches!(self.device, BurnDevice::Flex | BurnDevice::Ndarray)
    }

    fn probe(&self) -> Result<(), BackendError> {
        self_test(self.name(), [2.0, 4.0, 6.0], || {
            let device = self.make_device();
            let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device);
            x.mul_scalar(2.0)
                .into_data()
                .try_into_vec::<f32>()
                .map_err(|e| format!("{e:?}"))
        })
    }

    fn feature_extractor(
        &self,
        kind: BackboneKind,
    ) -> Result<Box<dyn FeatureExtractor>, BackendError> {
        Ok(Box::new(self.backbone(kind, None)?))
    }

    fn load(&self, artifact: &ModelArtifact) -> Result<Box<dyn Classifier>, BackendError> {
        let extractor = self.backbone(artifact.backbone, artifact.tail_ref())?;
        let device = extractor.device.clone();
        Ok(Box::new(HeadClassifier::load(extractor, artifact, device)?))
    }

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
        let device = self.make_device();
        let trained = train_head(
            &device,
            classes.len(),
            train,
            validation,
            config,
            initial_head,
            observer,
        )?;
        Ok(TrainedArtifact {
            artifact: ModelArtifact {
                backbone,
                classes: classes.to_vec(),
                head: trained.head.to_bytes()?,
                tail: None,
            },
            history: trained.history,
            best_epoch: trained.best_epoch,
        })
    }
    fn fine_tune(
        &self,
        base: &ModelArtifact,
        train: ImageSource<'_>,
        validation: ImageSource<'_>,
        config: &FineTuneConfig,
        observer: &mut dyn TrainingObserver,
    ) -> Result<TrainedArtifact, BackendError> {
        fine_tune(
            &self.make_device(),
            base,
            train,
            validation,
            config,
            observer,
        )
    }
}

struct BurnFeatureExtractor {
    kind: BackboneKind,
    backbone: Backbone,
    device: Device,
}

impl FeatureExtractor for BurnFeatureExtractor {
    fn backbone(&self) -> BackboneKind {
        self.kind
    }

    fn features(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, BackendError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        guarded(|| {
            let x = self.backbone.normalize(pixels_tensor(images, &self.device));
            crate::network::rows(self.backbone.forward(x))
        })
    }
}

/// Any plugin's feature extractor with the artifact's burn head on top.
pub(crate) struct HeadClassifier<E> {
    extractor: E,
    head: ClassifierHead,
    /// Where the head computes (the extractor's own device for burn plugins).
    head_device: Device,
    classes: Vec<String>,
}

impl<E: FeatureExtractor> HeadClassifier<E> {
    /// Restores the artifact's head on `head_device` over `extractor`.
    pub(crate) fn load(
        extractor: E,
        artifact: &ModelArtifact,
        head_device: Device,
    ) -> Result<Self, BackendError> {
        let head =
            ClassifierHead::from_bytes(&artifact.head, artifact.classes.len(), &head_device)?;
        Ok(Self {
            extractor,
            head,
            head_device,
            classes: artifact.classes.clone(),
        })
    }
}

impl<E: FeatureExtractor> FeatureExtractor for HeadClassifier<E> {
    fn backbone(&self) -> BackboneKind {
        self.extractor.backbone()
    }

    fn features(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, BackendError> {
        self.extractor.features(images)
    }
}

impl<E: FeatureExtractor> Classifier for HeadClassifier<E> {
    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn classify_features(&self, features: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, BackendError> {
        guarded(|| self.head.probabilities(features, &self.head_device))
    }
}

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

/// How the `onnxruntime` plugin runs a model (config section `[onnxruntime]`); ignored by the
/// other plugins. 0 means one per available core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnnxRuntimeOptions {
    /// Single-threaded sessions per loaded model (runs side by side; the server starts a worker
    /// per session).
    pub sessions: usize,
    /// Intra-op threads of one more session, lent only while no other run is in progress, so a
    /// lone request gets every core; 1 = no such session.
    pub intra_threads: usize,
}

/// The number format OpenVINO computes the backbone in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenVinoPrecision {
    /// bfloat16 where the CPU computes it natively, else float32.
    #[default]
    Auto,
    Bf16,
    F32,
}

/// How a loaded model runs under OpenVINO (config section `[openvino]`); ignored by
/// the other plugins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenVinoOptions {
    /// Single-threaded streams (and infer requests) per loaded model, runs side by side; 0: one
    /// per core.
    pub streams: usize,
    /// Threads of one more compiled copy, lent only while no other run is in progress, so a lone
    /// request gets every core; 0: every core, 1: no such copy.
    pub intra_threads: usize,
    pub precision: OpenVinoPrecision,
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
            .and_then(|()| openvino.runs_bf16())
        {
            Ok(true) => {
                let library = library_description(Runtime::OpenVino);
                return chosen(
                    Box::new(openvino),
                    format!(
                        "OpenVINO loaded from {library} and computes in bfloat16 here; using \
                         openvino (about 1.6x ONNX Runtime's float32 throughput, same accuracy, \
                         see backends/BENCHMARKS.md)"
                    ),
                    &passed_over,
                );
            }
            Ok(false) => passed_over.push(
                "openvino loads but would compute in float32 here (no native bfloat16, or \
                 openvino.precision = \"f32\"), where onnxruntime is faster"
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
pub(crate) mod tests {
    use super::*;
    use crate::runtimes::{selected, Runtime};

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
            let expected = if openvino_here() && crate::runtimes::cpu_has_native_bf16() {
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
                eprintln!("{name} skipped: its library is not found (see `sprig runtimes`)");
            }
        }
    }

    #[test]
    fn artifacts_round_trip_and_reject_garbage() {
        let artifact = ModelArtifact {
            backbone: BackboneKind::EfficientnetLite0,
            classes: vec!["a".into(), "b".into()],
            head: vec![1, 2, 3, 4],
            tail: None,
        };
        assert_eq!(
            ModelArtifact::from_bytes(&artifact.to_bytes()).unwrap(),
            artifact
        );
        assert!(ModelArtifact::from_bytes(b"not an artifact").is_err());
        assert!(ModelArtifact::from_bytes(&artifact.to_bytes()[..14]).is_err());
    }

    /// Every available plugin: features have the right width, a loaded classifier answers
    /// probability rows that sum to 1, and the same artifact loads on each plugin.
    #[test]
    fn every_plugin_extracts_features_and_classifies() {
        let image =
            PreparedImage::from_pixels(vec![90; crate::preprocess::INPUT_SIZE.pow(2) * 3]).unwrap();
        let device = Device::flex();
        let head = ClassifierHead::new(3, &device).to_bytes().unwrap();
        let artifact = ModelArtifact {
            backbone: BackboneKind::MobilenetV2,
            classes: vec!["a".into(), "b".into(), "c".into()],
            head,
            tail: None,
        };
        for plugin in available_plugins() {
            let features = plugin
                .feature_extractor(BackboneKind::MobilenetV2)
                .unwrap()
                .features(std::slice::from_ref(&image))
                .unwrap();
            assert_eq!(features[0].len(), crate::FEATURE_DIM, "{}", plugin.name());
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
                    features: vec![i as f32; crate::FEATURE_DIM],
                    label: i % 3,
                })
                .collect();
            let config = HeadTrainingConfig {
                max_epochs: 1,
                ..HeadTrainingConfig::default()
            };
            let trained = plugin
                .train(
                    BackboneKind::MobilenetV2,
                    &artifact.classes,
                    &examples,
                    &[],
                    &config,
                    None,
                    &mut Silent,
                )
                .unwrap();
            let reloaded = plugin.load(&trained.artifact).unwrap();
            assert_eq!(reloaded.classify_features(&features).unwrap()[0].len(), 3);
        }
    }

    struct Silent;

    impl TrainingObserver for Silent {
        fn batch_done(&mut self, _epoch: usize, _batch: usize, _batches: usize) -> bool {
            true
        }
        fn epoch_done(&mut self, _report: &crate::training::EpochReport) {}
    }
}
