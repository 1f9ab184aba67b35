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
/// With test-time flipping (`artifact.test_time_flip`) each image is also run mirrored: its
/// feature row is the plain view's features followed by the mirrored view's (the leading part,
/// the embedding, stays the plain view's), and its answer is the geometric mean of the head's
/// answers to the two halves — so the same mirrored pair gives the same answer whichever way
/// round it comes.
pub(crate) struct HeadClassifier<E> {
    extractor: E,
    head: ClassifierHead,
    /// Where the head computes (the extractor's own device for burn plugins).
    head_device: Device,
    classes: Vec<String>,
    test_time_flip: bool,
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
            test_time_flip: artifact.test_time_flip,
        })
    }
}

impl<E: FeatureExtractor> FeatureExtractor for HeadClassifier<E> {
    fn spec(&self) -> FeatureSpec {
        self.extractor.spec()
    }

    fn features(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, BackendError> {
        if !self.test_time_flip {
            return self.extractor.features(images);
        }
        let both: Vec<PreparedImage> = images
            .iter()
            .cloned()
            .chain(images.iter().map(PreparedImage::mirrored))
            .collect();
        let mut rows = self.extractor.features(&both)?;
        let mirrored = rows.split_off(images.len());
        Ok(rows
            .into_iter()
            .zip(mirrored)
            .map(|(mut row, mirrored)| {
                row.extend(mirrored);
                row
            })
            .collect())
    }
}

impl<E: FeatureExtractor> Classifier for HeadClassifier<E> {
    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn classify_features(&self, features: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, BackendError> {
        if !self.test_time_flip {
            return guarded(|| self.head.probabilities(features, &self.head_device));
        }
        let width = self.spec().dim();
        if let Some(row) = features.iter().find(|row| row.len() != 2 * width) {
            return Err(BackendError::Inference(format!(
                "a test-time-flipped row holds two views of {width} features, not {}",
                row.len()
            )));
        }
        let (plain, mirrored): (Vec<Vec<f32>>, Vec<Vec<f32>>) = features
            .iter()
            .map(|row| (row[..width].to_vec(), row[width..].to_vec()))
            .unzip();
        guarded(|| {
            self.head
                .probabilities_of_views(&plain, &mirrored, &self.head_device)
        })
    }
}
