//! What every backend plugin is: a name, a probe (can it run here?), and loaders of model
//! artifacts into trait-object classifiers; plus what the plugins share to implement it.

use burn::tensor::Device;

use crate::artifact::{ModelArtifact, TrainedArtifact};
use crate::error::{guarded, BackendError};
use crate::fine_tune::{FineTuneConfig, LabelledImages};
use crate::head::ClassifierHead;
use crate::network::{BackboneKind, FeatureSpec};
use crate::preprocess::PreparedImage;
use crate::training::{Example, HeadTrainingConfig, TrainingObserver};
use crate::views::{view_of, TestTimeViews};

/// Backbone features for prepared images.
pub trait FeatureExtractor: Send + Sync {
    /// The features this extractor computes.
    fn spec(&self) -> FeatureSpec;
    /// One feature vector (`spec().dim()` wide) per image.
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

/// A compute backend that can serve and train sprig models.
pub trait BackendPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// True for GPU plugins (used to pick training defaults such as fine-tuning).
    fn is_accelerator(&self) -> bool;
    /// Checks that the backend can run on this machine; never panics.
    fn probe(&self) -> Result<(), BackendError>;
    /// The number format the backbone computes in: "f32", or "bf16" / "int8" where a plugin
    /// trades bits for speed (accuracy compared in `backends/BENCHMARKS.md`).
    fn precision(&self) -> &'static str {
        "f32"
    }
    /// The number format `kind` computes in, `fine_tuned` or as shipped (int8 needs the
    /// backbone's INT8 grid and its shipped weights; otherwise the plugin's float format).
    fn precision_for(&self, _kind: BackboneKind, _fine_tuned: bool) -> &'static str {
        self.precision()
    }
    /// Forward passes worth running side by side (the server starts this many inference
    /// workers unless configured): burn backends parallelise inside one pass.
    fn parallel_runs(&self) -> usize {
        1
    }
    fn feature_extractor(
        &self,
        spec: FeatureSpec,
    ) -> Result<Box<dyn FeatureExtractor>, BackendError>;
    fn load(&self, artifact: &ModelArtifact) -> Result<Box<dyn Classifier>, BackendError>;
    /// Trains a head on backbone features (computed as `features` says) and packages it as an
    /// artifact.
    #[allow(clippy::too_many_arguments)]
    fn train(
        &self,
        features: FeatureSpec,
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
        train: LabelledImages<'_>,
        validation: LabelledImages<'_>,
        config: &FineTuneConfig,
        observer: &mut dyn TrainingObserver,
    ) -> Result<TrainedArtifact, BackendError>;
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

/// Any plugin's feature extractor with the artifact's burn head on top.
///
/// With test-time views (`artifact.test_time`) each image is also run in those views (its
/// augmented views drawn from the image's seed, its mirror image): its feature row is the plain
/// view's features followed by each extra view's, in [`TestTimeViews::extra`] order (the
/// leading part, the embedding, stays the plain view's), and its answer is the geometric mean of
/// the head's answers to the parts — so the pipeline, scoring the rows it builds from cached
/// views, scores what is served.
pub(crate) struct HeadClassifier<E> {
    extractor: E,
    head: ClassifierHead,
    /// Where the head computes (the extractor's own device for burn plugins).
    head_device: Device,
    classes: Vec<String>,
    test_time: TestTimeViews,
}

impl<E: FeatureExtractor> HeadClassifier<E> {
    /// Restores the artifact's head on `head_device` over `extractor`.
    pub(crate) fn load(
        extractor: E,
        artifact: &ModelArtifact,
        head_device: Device,
    ) -> Result<Self, BackendError> {
        let head = artifact.load_head(&head_device)?;
        Ok(Self {
            extractor,
            head,
            head_device,
            classes: artifact.classes.clone(),
            test_time: artifact.test_time,
        })
    }
}

impl<E: FeatureExtractor> FeatureExtractor for HeadClassifier<E> {
    fn spec(&self) -> FeatureSpec {
        self.extractor.spec()
    }

    fn features(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, BackendError> {
        if self.test_time.count() == 1 {
            return self.extractor.features(images);
        }
        // One batch: the images, then all of them in each extra view.
        let all: Vec<PreparedImage> = images
            .iter()
            .cloned()
            .chain(
                self.test_time
                    .extra()
                    .flat_map(|view| images.iter().map(move |image| view_of(image, view))),
            )
            .collect();
        let computed = self.extractor.features(&all)?;
        let mut rows: Vec<Vec<f32>> = computed[..images.len()].to_vec();
        for view in computed[images.len()..].chunks(images.len().max(1)) {
            for (row, part) in rows.iter_mut().zip(view) {
                row.extend_from_slice(part);
            }
        }
        Ok(rows)
    }
}

impl<E: FeatureExtractor> Classifier for HeadClassifier<E> {
    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn classify_features(&self, features: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, BackendError> {
        let count = self.test_time.count();
        if count == 1 {
            return guarded(|| self.head.probabilities(features, &self.head_device));
        }
        let width = self.spec().dim();
        if let Some(row) = features.iter().find(|row| row.len() != count * width) {
            return Err(BackendError::Inference(format!(
                "a row of {count} test-time views holds {} features, not {}",
                row.len(),
                count * width
            )));
        }
        let views: Vec<Vec<Vec<f32>>> = (0..count)
            .map(|k| {
                features
                    .iter()
                    .map(|row| row[k * width..(k + 1) * width].to_vec())
                    .collect()
            })
            .collect();
        guarded(|| self.head.probabilities_of_views(&views, &self.head_device))
    }
}
