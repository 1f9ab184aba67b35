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
                test_time: Default::default(),
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
    use crate::views::{view_of, TestTimeViews};

    fn artifact(spec: FeatureSpec) -> ModelArtifact {
        ModelArtifact {
            backbone: spec.backbone,
            pooling: spec.pooling,
            classes: vec!["a".into(), "b".into(), "c".into()],
            head: untrained_head(3, &spec.head_groups(), &Device::flex()),
            tail: None,
            test_time: TestTimeViews::default(),
        }
    }

    fn image() -> PreparedImage {
        let pixels = (0..INPUT_SIZE * INPUT_SIZE * 3)
            .map(|i| ((i % (INPUT_SIZE * 3)) * 255 / (INPUT_SIZE * 3)) as u8 ^ (i / 5000) as u8)
            .collect();
        PreparedImage::from_pixels(pixels).unwrap()
    }

    /// The normalised geometric mean of `answers`.
    fn geometric_mean(answers: &[Vec<f32>]) -> Vec<f32> {
        let product: Vec<f32> = (0..answers[0].len())
            .map(|c| {
                let logs: f32 = answers.iter().map(|a| a[c].ln()).sum();
                (logs / answers.len() as f32).exp()
            })
            .collect();
        let sum: f32 = product.iter().sum();
        product.iter().map(|p| p / sum).collect()
    }

    fn largest_gap(answers: &[Vec<f32>], want: &[f32]) -> f32 {
        answers
            .iter()
            .flat_map(|answer| answer.iter().zip(want).map(|(a, b)| (a - b).abs()))
            .fold(0.0, f32::max)
    }

    /// A flipping classifier's rows hold both views' features, and it answers an image and its
    /// mirror alike: the geometric mean of the plain classifier's two answers, which differ.
    #[test]
    fn test_time_flipping_answers_an_image_and_its_mirror_alike() {
        let spec = FeatureSpec::new(BackboneKind::MobilenetV2, Pooling::EveryBlock);
        let mut artifact = artifact(spec);
        let image = image();
        let pair = [image.clone(), image.mirrored()];
        assert_eq!(pair[1].mirrored(), image);
        let plugin = BurnPlugin::flex();
        let plain = plugin.load(&artifact).unwrap().predict(&pair).unwrap();
        let apart = largest_gap(&plain[..1], &plain[1]);
        assert!(apart > 1e-3, "the plain answers hardly differ ({apart})");

        artifact.test_time.flip = true;
        let flipping = plugin.load(&artifact).unwrap();
        assert_eq!(
            flipping.features(&pair[..1]).unwrap()[0].len(),
            2 * spec.dim()
        );
        let flipped = flipping.predict(&pair).unwrap();
        let largest = largest_gap(&flipped, &geometric_mean(&plain));
        // float32 softmax of averaged logits against the root of two softmaxes: measured 3.0e-8.
        assert!(largest < 1e-6, "{flipped:?} against {plain:?}: {largest}");
        eprintln!("flipped answers against the plain answers' geometric mean: {largest:e}");
    }

    /// A classifier with test-time augmented views answers each image with the geometric mean of
    /// the plain classifier's answers to the image and its views — the views drawn from the
    /// image's own seed, so images with other seeds get other answers.
    #[test]
    fn test_time_views_answer_the_geometric_mean_of_the_seeded_views() {
        let spec = FeatureSpec::new(BackboneKind::MobilenetV2, Pooling::EveryBlock);
        let mut artifact = artifact(spec);
        let plugin = BurnPlugin::flex();
        let plain = plugin.load(&artifact).unwrap();
        artifact.test_time.augmented = 2;
        let viewing = plugin.load(&artifact).unwrap();
        let images = [image().seeded(11), image().seeded(12)];
        let answers = viewing.predict(&images).unwrap();
        assert_eq!(
            viewing.features(&images[..1]).unwrap()[0].len(),
            3 * spec.dim()
        );
        let mut largest = 0.0f32;
        for (image, answer) in images.iter().zip(&answers) {
            let views: Vec<PreparedImage> = (0..=2).map(|v| view_of(image, v)).collect();
            let each = plain.predict(&views).unwrap();
            let apart = largest_gap(&each[..1], &each[1]);
            assert!(apart > 1e-3, "the views' answers hardly differ ({apart})");
            largest = largest.max(largest_gap(
                std::slice::from_ref(answer),
                &geometric_mean(&each),
            ));
        }
        let seeds_apart = largest_gap(&answers[..1], &answers[1]);
        // float32 softmax of averaged logits against the cube root of three softmaxes.
        assert!(largest < 1e-6, "{answers:?}: {largest}");
        assert!(
            seeds_apart > 1e-4,
            "the seed changed nothing ({seeds_apart})"
        );
        eprintln!(
            "answers against the views' geometric mean: {largest:e}; two seeds apart: \
             {seeds_apart:e}"
        );
    }
}
