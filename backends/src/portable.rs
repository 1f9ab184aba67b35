//! A trained classifier as one portable ONNX model — the backbone with its fine-tuned tail, the
//! head, the version's temperature and a softmax — and running such a file through ONNX Runtime
//! to check it against the served model.

use burn::tensor::Device;

use crate::artifact::ModelArtifact;
use crate::error::BackendError;
use crate::network::load_backbone;
use crate::onnx_export::{export_classifier, input_tensor};
use crate::onnxruntime::ModelRunner;
use crate::preprocess::{PreparedImage, INPUT_SIZE};

/// Images per run when checking an exported model (bounds ONNX Runtime's activation memory).
const CHECK_BATCH: usize = 16;

/// `artifact` as one float32 ONNX model: input `input` `[batch, 3, 224, 224]` (normalised as
/// [`input_tensor`] does), output `probabilities` `[batch, classes]` = softmax(logits /
/// `temperature`); `metadata` goes into the model's `metadata_props`.
pub fn classifier_onnx(
    artifact: &ModelArtifact,
    temperature: f32,
    metadata: &[(&str, &str)],
) -> Result<Vec<u8>, BackendError> {
    let device = Device::flex();
    let backbone = load_backbone(artifact.backbone, artifact.tail_ref(), &device)?;
    let head = artifact.load_head(&device)?;
    Ok(export_classifier(
        &backbone,
        artifact.pooling,
        &head.dense_layers(),
        artifact.test_time.flip,
        temperature,
        metadata,
    ))
}

/// The class probabilities ONNX Runtime computes with the exported `model` of `artifact`.
pub fn run_classifier_onnx(
    model: &[u8],
    artifact: &ModelArtifact,
    images: &[PreparedImage],
) -> Result<Vec<Vec<f32>>, BackendError> {
    let mut runner = ModelRunner::new(model)?;
    let mut rows = Vec::with_capacity(images.len());
    for batch in images.chunks(CHECK_BATCH) {
        let input = input_tensor(artifact.backbone, batch);
        let shape = [batch.len(), 3, INPUT_SIZE, INPUT_SIZE];
        let values = runner.run(&input, &shape)?;
        rows.extend(
            values
                .chunks_exact(artifact.classes.len())
                .map(<[f32]>::to_vec),
        );
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::untrained_head;
    use crate::network::{BackboneKind, FeatureSpec, Pooling};
    use crate::plugin::BackendPlugin;
    use crate::runtimes::{selected, Runtime};

    /// The exported classifier, run by ONNX Runtime, gives the probabilities the served model
    /// gives on flex, scaled by the temperature as core's calibration scales them
    /// (`softmax(ln p / T)`), for a head with non-trivial weights and T = 1.7, under both
    /// poolings — and with test-time flipping, where the graph mirrors the batch itself and
    /// averages the two views' logits as the served model's classifier does.
    #[test]
    fn the_exported_classifier_computes_the_served_probabilities() {
        if !cfg!(feature = "onnxruntime") {
            return crate::test_skip::skip(
                "portable export under ONNX Runtime",
                "built without the `onnxruntime` feature",
            );
        }
        if let Err(misses) = selected(Runtime::OnnxRuntime) {
            return crate::test_skip::skip("portable export under ONNX Runtime", &misses);
        }
        for pooling in Pooling::ALL {
            exported_classifier_matches(pooling, false);
        }
        exported_classifier_matches(Pooling::EveryBlock, true);
    }

    fn exported_classifier_matches(pooling: Pooling, test_time_flip: bool) {
        let device = Device::flex();
        let classes = vec!["a".to_string(), "b".into(), "c".into()];
        let spec = FeatureSpec::new(BackboneKind::MobilenetV2, pooling);
        let artifact = ModelArtifact {
            backbone: spec.backbone,
            pooling,
            head: untrained_head(classes.len(), &spec.head_groups(), &device),
            classes,
            tail: None,
            test_time: crate::views::TestTimeViews {
                flip: test_time_flip,
                augmented: 0,
            },
        };
        let images: Vec<PreparedImage> = (0..3u8)
            .map(|k| {
                let pixels = (0..INPUT_SIZE * INPUT_SIZE * 3)
                    .map(|i| (i as u8).wrapping_mul(k + 3) ^ (i / 700) as u8)
                    .collect();
                PreparedImage::from_pixels(pixels).unwrap()
            })
            .collect();
        let temperature = 1.7f32;
        let model = classifier_onnx(&artifact, temperature, &[("k", "v")]).unwrap();
        let exported = run_classifier_onnx(&model, &artifact, &images).unwrap();
        let served = crate::BurnPlugin::flex()
            .load(&artifact)
            .unwrap()
            .predict(&images)
            .unwrap();
        let mut largest = 0.0f32;
        let mut moved = 0.0f32;
        for (ours, theirs) in exported.iter().zip(&served) {
            let logits: Vec<f32> = theirs.iter().map(|p| p.ln() / temperature).collect();
            let max = logits.iter().copied().fold(f32::MIN, f32::max);
            let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
            for ((o, l), raw) in ours.iter().zip(&logits).zip(theirs) {
                largest = largest.max((o - (l - max).exp() / sum).abs());
                moved = moved.max((o - raw).abs());
            }
        }
        // float32 in both, summed in a different order: measured 8.9e-8.
        assert!(largest < 1e-6, "largest difference {largest}");
        assert!(moved > 1e-3, "the temperature changed nothing ({moved})");
        eprintln!(
            "{pooling:?}, flip {test_time_flip}: exported vs served, T = {temperature}: largest \
             difference {largest:e}"
        );
    }
}
