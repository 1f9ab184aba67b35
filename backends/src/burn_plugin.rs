//! The burn plugins: the shared burn model on one kind of device (flex, ndarray, wgpu).

use burn::tensor::{Device, Tensor};

use crate::artifact::{ModelArtifact, TrainedArtifact};
use crate::error::{guarded, BackendError};
use crate::fine_tune::{fine_tune, FineTuneConfig, LabelledImages};
use crate::network::{load_backbone, pixels_tensor, rows, Backbone, FeatureSpec};
use crate::plugin::{self_test, BackendPlugin, Classifier, FeatureExtractor, HeadClassifier};
use crate::preprocess::PreparedImage;
use crate::training::{train_head, Example, HeadTrainingConfig, TrainingObserver};

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
        spec: FeatureSpec,
        tail: Option<(usize, &[u8])>,
    ) -> Result<BurnFeatureExtractor, BackendError> {
        let device = self.make_device();
        // Serving only runs the backbone forward, so its batch norms are folded away (~10% faster
        // on flex, see BENCHMARKS.md).
        let backbone = guarded(|| {
            load_backbone(spec.backbone, tail, &device).map(Backbone::fold_batch_norms)
        })??;
        Ok(BurnFeatureExtractor {
            spec,
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
        spec: FeatureSpec,
    ) -> Result<Box<dyn FeatureExtractor>, BackendError> {
        Ok(Box::new(self.backbone(spec, None)?))
    }

    fn load(&self, artifact: &ModelArtifact) -> Result<Box<dyn Classifier>, BackendError> {
        let extractor = self.backbone(artifact.spec(), artifact.tail_ref())?;
        let device = extractor.device.clone();
        Ok(Box::new(HeadClassifier::load(extractor, artifact, device)?))
    }

    fn train(
        &self,
        features: FeatureSpec,
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
            &features.head_groups(),
            train,
            validation,
            config,
            initial_head,
            observer,
        )?;
        Ok(TrainedArtifact {
            artifact: ModelArtifact {
                backbone: features.backbone,
                pooling: features.pooling,
                classes: classes.to_vec(),
                head: trained.stored,
                tail: None,
                test_time_flip: false,
            },
            history: trained.history,
            best_epoch: trained.best_epoch,
        })
    }
    fn fine_tune(
        &self,
        base: &ModelArtifact,
        train: LabelledImages<'_>,
        validation: LabelledImages<'_>,
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
    spec: FeatureSpec,
    backbone: Backbone,
    device: Device,
}

impl FeatureExtractor for BurnFeatureExtractor {
    fn spec(&self) -> FeatureSpec {
        self.spec
    }

    fn features(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, BackendError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        guarded(|| {
            let x = self.backbone.normalize(pixels_tensor(images, &self.device));
            rows(self.backbone.forward_pooled(x, self.spec.pooling))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::untrained_head;
    use crate::network::{BackboneKind, Pooling};
    use crate::preprocess::INPUT_SIZE;

    /// A flipping classifier's rows hold both views' features, and it answers an image and its
    /// mirror alike: the geometric mean of the plain classifier's two answers, which differ.
    #[test]
    fn test_time_flipping_answers_an_image_and_its_mirror_alike() {
        let spec = FeatureSpec::new(BackboneKind::MobilenetV2, Pooling::EveryBlock);
        let mut artifact = ModelArtifact {
            backbone: spec.backbone,
            pooling: spec.pooling,
            classes: vec!["a".into(), "b".into(), "c".into()],
            head: untrained_head(3, &spec.head_groups(), &Device::flex()),
            tail: None,
            test_time_flip: false,
        };
        let pixels = (0..INPUT_SIZE * INPUT_SIZE * 3)
            .map(|i| ((i % (INPUT_SIZE * 3)) * 255 / (INPUT_SIZE * 3)) as u8 ^ (i / 5000) as u8)
            .collect();
        let image = PreparedImage::from_pixels(pixels).unwrap();
        let pair = [image.clone(), image.mirrored()];
        assert_eq!(pair[1].mirrored(), image);
        let plugin = BurnPlugin::flex();
        let plain = plugin.load(&artifact).unwrap().predict(&pair).unwrap();
        let apart = plain[0]
            .iter()
            .zip(&plain[1])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(apart > 1e-3, "the plain answers hardly differ ({apart})");

        artifact.test_time_flip = true;
        let flipping = plugin.load(&artifact).unwrap();
        assert_eq!(
            flipping.features(&pair[..1]).unwrap()[0].len(),
            2 * spec.dim()
        );
        let flipped = flipping.predict(&pair).unwrap();
        let product: Vec<f32> = plain[0]
            .iter()
            .zip(&plain[1])
            .map(|(a, b)| (a * b).sqrt())
            .collect();
        let sum: f32 = product.iter().sum();
        let mut largest = 0.0f32;
        for answer in &flipped {
            for (got, want) in answer.iter().zip(&product) {
                largest = largest.max((got - want / sum).abs());
            }
        }
        // float32 softmax of averaged logits against the root of two softmaxes: measured 3.0e-8.
        assert!(largest < 1e-6, "{flipped:?} against {product:?}: {largest}");
        eprintln!("flipped answers against the plain answers' geometric mean: {largest:e}");
    }
}
