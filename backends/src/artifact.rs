//! The model artifact: what a trained classifier is stored as (backbone, classes, head weights and
//! an optional fine-tuned backbone tail), and what training through a plugin returns.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use crate::head::ClassifierHead;
use crate::network::{BackboneKind, FeatureSpec, Pooling};
use crate::training::EpochReport;
use crate::views::TestTimeViews;

/// Everything needed to rebuild a trained classifier.
#[derive(Clone, PartialEq)]
pub struct ModelArtifact {
    pub backbone: BackboneKind,
    /// What the head reads: the backbone's features under this pooling.
    pub pooling: Pooling,
    pub classes: Vec<String>,
    /// Head weights (safetensors).
    pub head: Vec<u8>,
    /// The fine-tuned end of the backbone (phase 2), if any; otherwise the shipped ImageNet
    /// backbone is used as is.
    pub tail: Option<TailWeights>,
    /// The views each image is also classified in (its mirror image, its augmented views); the
    /// answer is the geometric mean of the answers to all views (a forward pass per view).
    pub test_time: TestTimeViews,
}

/// Fine-tuned weights of a backbone's last `blocks` blocks and head convolution (safetensors of a
/// [`crate::network::BackboneTail`]).
#[derive(Clone, PartialEq)]
pub struct TailWeights {
    pub blocks: usize,
    pub weights: Vec<u8>,
}

impl ModelArtifact {
    /// The features the head reads.
    pub fn spec(&self) -> FeatureSpec {
        FeatureSpec::new(self.backbone, self.pooling)
    }

    /// The head, restored on `device` (as wide as its features).
    pub fn load_head(&self, device: &Device) -> Result<ClassifierHead, BackendError> {
        let groups = self.spec().head_groups();
        ClassifierHead::from_bytes(&self.head, self.classes.len(), &groups, device)
    }

    /// The backbone's fine-tuned tail as `load_backbone` takes it.
    pub fn tail_ref(&self) -> Option<(usize, &[u8])> {
        self.tail.as_ref().map(|t| (t.blocks, t.weights.as_slice()))
    }
}

#[derive(Serialize, Deserialize)]
struct ArtifactHeader {
    backbone: BackboneKind,
    /// Absent from artifacts written before pooling was a choice: the final map.
    #[serde(default)]
    pooling: Pooling,
    classes: Vec<String>,
    /// Length of the head weights; the tail's weights follow them.
    head_bytes: usize,
    #[serde(default)]
    tail_blocks: Option<usize>,
    /// Absent from artifacts written before test-time flipping was a choice: off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    test_time_flip: bool,
    /// Absent from artifacts written before test-time augmented views were a choice: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    test_time_views: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

const ARTIFACT_MAGIC: &[u8; 8] = b"SPRIGMA2";

impl ModelArtifact {
    /// Self-describing bytes: magic, header length (u32 LE), JSON header, head safetensors,
    /// then the fine-tuned tail's safetensors when there is one.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&ArtifactHeader {
            backbone: self.backbone,
            pooling: self.pooling,
            classes: self.classes.clone(),
            head_bytes: self.head.len(),
            tail_blocks: self.tail.as_ref().map(|t| t.blocks),
            test_time_flip: self.test_time.flip,
            test_time_views: self.test_time.augmented,
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
            pooling: header.pooling,
            classes: header.classes,
            head: head.to_vec(),
            tail,
            test_time: TestTimeViews {
                flip: header.test_time_flip,
                augmented: header.test_time_views,
            },
        })
    }
}

impl std::fmt::Debug for ModelArtifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelArtifact")
            .field("backbone", &self.backbone)
            .field("pooling", &self.pooling)
            .field("classes", &self.classes)
            .field("head_bytes", &self.head.len())
            .field("tail_blocks", &self.tail.as_ref().map(|t| t.blocks))
            .field("test_time", &self.test_time)
            .finish()
    }
}

/// Result of training a head through a plugin.
pub struct TrainedArtifact {
    pub artifact: ModelArtifact,
    pub history: Vec<EpochReport>,
    pub best_epoch: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_round_trip_and_reject_garbage() {
        let artifact = ModelArtifact {
            backbone: BackboneKind::EfficientnetLite0,
            pooling: Pooling::EveryBlock,
            classes: vec!["a".into(), "b".into()],
            head: vec![1, 2, 3, 4],
            tail: None,
            test_time: TestTimeViews {
                flip: true,
                augmented: 3,
            },
        };
        assert_eq!(
            ModelArtifact::from_bytes(&artifact.to_bytes()).unwrap(),
            artifact
        );
        assert!(ModelArtifact::from_bytes(b"not an artifact").is_err());
        assert!(ModelArtifact::from_bytes(&artifact.to_bytes()[..14]).is_err());
    }
}
