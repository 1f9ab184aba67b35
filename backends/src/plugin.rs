//! Backend plugins: each has a name, a probe (can it run here?) and loads model artifacts into
//! trait-object classifiers. The burn plugins share one model implementation and differ only in
//! the runtime `Device` they construct.

use std::panic::{catch_unwind, AssertUnwindSafe};

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use crate::head::ClassifierHead;
use crate::network::{pixels_tensor, Backbone, BackboneKind, BackboneWeights};
use crate::preprocess::PreparedImage;
use crate::training::{train_head, Example, HeadTrainingConfig, TrainingObserver};
use crate::weights::imagenet_weights;

/// Everything needed to rebuild a trained classifier.
#[derive(Clone, PartialEq)]
pub struct ModelArtifact {
    pub backbone: BackboneKind,
    pub classes: Vec<String>,
    /// Head weights (safetensors).
    pub head: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ArtifactHeader {
    backbone: BackboneKind,
    classes: Vec<String>,
}

const ARTIFACT_MAGIC: &[u8; 8] = b"SPRIGMA1";

impl ModelArtifact {
    /// Self-describing bytes: magic, header length (u32 LE), JSON header, head safetensors.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&ArtifactHeader {
            backbone: self.backbone,
            classes: self.classes.clone(),
        })
        .expect("artifact header serialises");
        let mut bytes = Vec::with_capacity(12 + header.len() + self.head.len());
        bytes.extend_from_slice(ARTIFACT_MAGIC);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&self.head);
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
        let (header, head) = rest.split_at(length);
        let header: ArtifactHeader =
            serde_json::from_slice(header).map_err(|_| corrupt("header"))?;
        Ok(Self {
            backbone: header.backbone,
            classes: header.classes,
            head: head.to_vec(),
        })
    }
}

impl std::fmt::Debug for ModelArtifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelArtifact")
            .field("backbone", &self.backbone)
            .field("classes", &self.classes)
            .field("head_bytes", &self.head.len())
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

    fn backbone(&self, kind: BackboneKind) -> Result<BurnFeatureExtractor, BackendError> {
        let device = self.make_device();
        let backbone = guarded(|| BackboneWeights::load(kind, imagenet_weights(kind), &device))??;
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
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, BackendError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend panicked".into());
        BackendError::Inference(reason)
    })
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
        let unavailable = |reason: String| BackendError::Unavailable {
            name: self.name().into(),
            reason,
        };
        let values = guarded(|| {
            let device = self.make_device();
            let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device);
            x.mul_scalar(2.0).into_data().try_into_vec::<f32>()
        })
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(|e| unavailable(format!("{e:?}")))?;
        if values != [2.0, 4.0, 6.0] {
            return Err(unavailable(format!("self-test computed {values:?}")));
        }
        Ok(())
    }

    fn feature_extractor(
        &self,
        kind: BackboneKind,
    ) -> Result<Box<dyn FeatureExtractor>, BackendError> {
        Ok(Box::new(self.backbone(kind)?))
    }

    fn load(&self, artifact: &ModelArtifact) -> Result<Box<dyn Classifier>, BackendError> {
        let extractor = self.backbone(artifact.backbone)?;
        let head =
            ClassifierHead::from_bytes(&artifact.head, artifact.classes.len(), &extractor.device)?;
        Ok(Box::new(BurnClassifier {
            extractor,
            head,
            classes: artifact.classes.clone(),
        }))
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
            },
            history: trained.history,
            best_epoch: trained.best_epoch,
        })
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

struct BurnClassifier {
    extractor: BurnFeatureExtractor,
    head: ClassifierHead,
    classes: Vec<String>,
}

impl FeatureExtractor for BurnClassifier {
    fn backbone(&self) -> BackboneKind {
        self.extractor.kind
    }

    fn features(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, BackendError> {
        self.extractor.features(images)
    }
}

impl Classifier for BurnClassifier {
    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn classify_features(&self, features: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, BackendError> {
        guarded(|| self.head.probabilities(features, &self.extractor.device))
    }
}

/// The backend names a config may ask for.
pub const BACKEND_CHOICES: &[&str] = &["auto", "flex", "ndarray", "wgpu"];

/// The plugin chosen at start-up and why.
pub struct Selection {
    pub plugin: Box<dyn BackendPlugin>,
    pub reason: String,
}

/// Picks the backend for `requested` (`auto`, `flex`, `ndarray` or `wgpu`).
///
/// `auto` prefers wgpu when it is compiled in and a real GPU adapter answers, else flex.
/// An explicitly requested backend that cannot run here is an error, not a fallback.
pub fn select_backend(requested: &str) -> Result<Selection, BackendError> {
    let explicit = |plugin: Box<dyn BackendPlugin>| -> Result<Selection, BackendError> {
        plugin.probe()?;
        Ok(Selection {
            reason: format!("backend '{}' requested in config", plugin.name()),
            plugin,
        })
    };
    match requested {
        "flex" => explicit(Box::new(BurnPlugin::flex())),
        "ndarray" => explicit(Box::new(BurnPlugin::ndarray())),
        #[cfg(feature = "wgpu")]
        "wgpu" => explicit(Box::new(BurnPlugin::wgpu())),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => Err(BackendError::Unavailable {
            name: "wgpu".into(),
            reason: "this binary was built without the `wgpu` cargo feature".into(),
        }),
        "auto" => Ok(auto_select()),
        other => Err(BackendError::UnknownBackend(other.into())),
    }
}

fn auto_select() -> Selection {
    #[cfg(feature = "wgpu")]
    let reason = match BurnPlugin::wgpu_gpu_only().probe() {
        Ok(()) => {
            return Selection {
                plugin: Box::new(BurnPlugin::wgpu_gpu_only()),
                reason: "auto: wgpu is compiled in and a GPU adapter answered".into(),
            }
        }
        Err(e) => format!("auto: wgpu compiled in but no GPU adapter ({e}); using flex"),
    };
    #[cfg(not(feature = "wgpu"))]
    let reason =
        "auto: built without the wgpu feature; using flex (the fast CPU backend)".to_string();
    Selection {
        plugin: Box::new(BurnPlugin::flex()),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_flex_and_says_why() {
        let selection = select_backend("auto").unwrap();
        #[cfg(not(feature = "wgpu"))]
        {
            assert_eq!(selection.plugin.name(), "flex");
            assert!(
                selection.reason.contains("without the wgpu feature"),
                "{}",
                selection.reason
            );
        }
        #[cfg(feature = "wgpu")]
        assert!(
            ["flex", "wgpu"].contains(&selection.plugin.name()),
            "{}",
            selection.reason
        );
    }

    #[test]
    fn explicit_backends_run_or_fail_clearly() {
        assert_eq!(select_backend("flex").unwrap().plugin.name(), "flex");
        assert_eq!(select_backend("ndarray").unwrap().plugin.name(), "ndarray");
        assert!(
            matches!(select_backend("tpu"), Err(BackendError::UnknownBackend(name)) if name == "tpu")
        );
        #[cfg(not(feature = "wgpu"))]
        match select_backend("wgpu") {
            Err(BackendError::Unavailable { name, reason }) => {
                assert_eq!(name, "wgpu");
                assert!(reason.contains("cargo feature"), "{reason}");
            }
            other => panic!(
                "expected an unavailable backend, got {:?}",
                other.map(|s| s.reason)
            ),
        }
    }

    #[test]
    fn artifacts_round_trip_and_reject_garbage() {
        let artifact = ModelArtifact {
            backbone: BackboneKind::EfficientnetLite0,
            classes: vec!["a".into(), "b".into()],
            head: vec![1, 2, 3, 4],
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
        };
        for plugin in BurnPlugin::available() {
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
        }
    }
}
