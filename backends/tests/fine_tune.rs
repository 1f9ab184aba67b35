//! Phase 2 on real photos: fine-tuning the last blocks produces an artifact with a tail that
//! round-trips, loads on every available plugin with the same predictions, and still classifies;
//! under every-block pooling the served model answers as the tuned one did in training, on every
//! plugin.

use std::path::PathBuf;
use std::sync::Mutex;

use sprig_backends::fine_tune::LabelledImage;
use sprig_backends::training::TrainingObserver;
use sprig_backends::{
    available_plugins, decode, prepare, BackboneKind, BackendError, BackendPlugin, BurnPlugin,
    EpochReport, Example, FeatureSpec, FineTuneConfig, HeadTrainingConfig, ModelArtifact, Pooling,
    PreparedImage,
};

/// One training at a time: two in one process on the same device disturb each other's
/// validation pass (seen: the served loss 0.323 against 0.332 reported in training, in 1 of 2
/// parallel runs; equal when run alone), and a server trains one version at a time.
static ONE_TRAINING: Mutex<()> = Mutex::new(());

struct Quiet(Vec<EpochReport>);

impl TrainingObserver for Quiet {
    fn batch_done(&mut self, _epoch: usize, _batch: usize, _batches: usize) -> bool {
        true
    }
    fn epoch_done(&mut self, report: &EpochReport) {
        self.0.push(report.clone());
    }
}

/// The demo training photos as (image, label), classes in sorted order.
fn photos() -> (Vec<String>, Vec<(PreparedImage, usize)>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/beans-sample/train");
    let classes = vec![
        "angular_leaf_spot".to_string(),
        "bean_rust".to_string(),
        "healthy".to_string(),
    ];
    let mut photos = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let mut files: Vec<_> = std::fs::read_dir(root.join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files.iter().take(12) {
            let bytes = std::fs::read(file).unwrap();
            photos.push((
                prepare(&decode(&bytes, &Default::default()).unwrap().rgb),
                label,
            ));
        }
    }
    (classes, photos)
}

/// A phase-1 head on `spec`'s features of `photos` (no validation images).
fn trained_head(
    flex: &BurnPlugin,
    spec: FeatureSpec,
    classes: &[String],
    photos: &[(PreparedImage, usize)],
    max_epochs: usize,
) -> ModelArtifact {
    let images: Vec<PreparedImage> = photos.iter().map(|(image, _)| image.clone()).collect();
    let features = flex
        .feature_extractor(spec)
        .unwrap()
        .features(&images)
        .unwrap();
    let examples: Vec<Example> = features
        .into_iter()
        .zip(photos)
        .map(|(features, (_, label))| Example {
            features,
            label: *label,
        })
        .collect();
    let head_config = HeadTrainingConfig {
        max_epochs,
        learning_rate: 1e-3,
        ..HeadTrainingConfig::default()
    };
    let quiet = &mut Quiet(Vec::new());
    flex.train(spec, classes, &examples, &[], &head_config, None, quiet)
        .unwrap()
        .artifact
}

/// `photos` as phase 2 reads them.
fn labelled(
    photos: &[(PreparedImage, usize)],
) -> impl Iterator<Item = Result<LabelledImage, BackendError>> + '_ {
    photos.iter().map(|(image, label)| {
        Ok(LabelledImage {
            image: image.clone(),
            label: *label,
        })
    })
}

/// Two epochs of phase 2 over the last `blocks` blocks.
fn tune(blocks: usize) -> FineTuneConfig {
    FineTuneConfig {
        blocks,
        training: HeadTrainingConfig {
            max_epochs: 2,
            learning_rate: 1e-4,
            batch_size: 16,
            ..HeadTrainingConfig::default()
        },
    }
}

#[test]
fn fine_tuning_trains_a_tail_that_loads_everywhere() {
    let _alone = ONE_TRAINING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let flex = BurnPlugin::flex();
    let (classes, photos) = photos();
    let spec = FeatureSpec::final_map(BackboneKind::MobilenetV2);
    let images: Vec<PreparedImage> = photos.iter().map(|(image, _)| image.clone()).collect();
    let base = trained_head(&flex, spec, &classes, &photos, 20);
    assert!(base.tail.is_none());
    let source = || labelled(&photos);
    let config = tune(2);
    // The tail model does not pool the texture block: a head over it is refused.
    let wide = ModelArtifact {
        pooling: Pooling::EveryBlockTexture,
        ..base.clone()
    };
    let refused = flex.fine_tune(
        &wide,
        &mut source(),
        &mut std::iter::empty(),
        &config,
        &mut Quiet(Vec::new()),
    );
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("fine-tuning needs final or every_block pooling")),
        "{:?}",
        refused.err()
    );

    let mut observer = Quiet(Vec::new());
    let tuned = flex
        .fine_tune(
            &base,
            &mut source(),
            &mut std::iter::empty(),
            &config,
            &mut observer,
        )
        .unwrap();
    assert_eq!(observer.0.len(), 2, "two epochs ran");
    let artifact = tuned.artifact;
    assert_eq!(artifact.tail.as_ref().map(|t| t.blocks), Some(2));
    let round_trip = ModelArtifact::from_bytes(&artifact.to_bytes()).unwrap();
    assert!(round_trip == artifact, "artifact with a tail round-trips");

    // The tail changed the backbone's features, and the fine-tuned model still classifies.
    let reference = flex.load(&artifact).unwrap();
    let tuned_features = reference.features(&images[..2]).unwrap();
    let extractor = flex.feature_extractor(spec).unwrap();
    let base_features = extractor.features(&images[..2]).unwrap();
    let moved = tuned_features[0]
        .iter()
        .zip(&base_features[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        moved > 1e-4,
        "fine-tuning changed the backbone (max |Δ| {moved})"
    );
    let predictions = reference.predict(&images).unwrap();
    let correct = predictions
        .iter()
        .zip(&photos)
        .filter(|(p, (_, label))| sprig_backends::training::argmax(p) == *label)
        .count();
    assert!(
        correct * 10 >= photos.len() * 7,
        "{correct}/{} training photos right after fine-tuning",
        photos.len()
    );

    serves_like_flex_everywhere(&artifact, &images[..4], &predictions);
}

/// Under every-block pooling the head reads the final map, the frozen blocks' taps and the tuned
/// blocks' taps: the served model must put them in the order the tail model trained with, so its
/// loss on the validation photos is the one training reported for the kept epoch.
#[test]
fn every_block_fine_tuning_serves_what_it_trained() {
    let _alone = ONE_TRAINING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let flex = BurnPlugin::flex();
    let (classes, photos) = photos();
    let spec = FeatureSpec::new(BackboneKind::MobilenetV2, Pooling::EveryBlock);
    let images: Vec<PreparedImage> = photos.iter().map(|(image, _)| image.clone()).collect();
    let base = trained_head(&flex, spec, &classes, &photos, 10);
    let source = || labelled(&photos);
    let config = tune(3);
    let tuned = flex
        .fine_tune(
            &base,
            &mut source(),
            &mut source(),
            &config,
            &mut Quiet(Vec::new()),
        )
        .unwrap();
    assert_eq!(tuned.artifact.pooling, spec.pooling);
    assert_eq!(tuned.artifact.tail.as_ref().map(|t| t.blocks), Some(3));
    let reported = tuned.history[tuned.best_epoch - 1].val_loss.unwrap();
    let served = flex
        .load(&tuned.artifact)
        .unwrap()
        .predict(&images)
        .unwrap();
    serves_like_flex_everywhere(&tuned.artifact, &images[..4], &served);
    let loss = served
        .iter()
        .zip(&photos)
        .map(|(p, (_, label))| -(p[*label].max(1e-12) as f64).ln())
        .sum::<f64>()
        / photos.len() as f64;
    // Measured: 0.31389 served and in training (equal to 5 decimals); with the tuned and frozen
    // taps swapped in the tail model, 0.892 against 1.003 (a base head trained at 1e-4).
    assert!(
        (loss - reported).abs() < 1e-3,
        "served loss {loss:.5} against {reported:.5} in training"
    );
}

/// Every available plugin serves the fine-tuned `artifact` with flex's answers (`predictions`,
/// the first of them for `images`).
fn serves_like_flex_everywhere(
    artifact: &ModelArtifact,
    images: &[PreparedImage],
    predictions: &[Vec<f32>],
) {
    for plugin in available_plugins() {
        let probabilities = plugin.load(artifact).unwrap().predict(images).unwrap();
        for (ours, theirs) in probabilities.iter().zip(predictions) {
            let difference = ours
                .iter()
                .zip(theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            // bfloat16 plugins round every layer to 8 mantissa bits (measured: 0.007); int8
            // plugins serve fine-tuned versions in their float precision (in int8 on the QAT grid
            // the difference measured 0.036).
            let precision = plugin.precision_for(artifact.backbone, true);
            let tolerance = if precision == "f32" { 1e-3 } else { 0.03 };
            assert!(
                difference < tolerance,
                "{} ({precision}) differs from flex by {difference}",
                plugin.name(),
            );
        }
    }
}
