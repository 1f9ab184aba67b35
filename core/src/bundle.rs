//! Versions moving between sprig instances: a bundle is one version's record (hyper-parameters,
//! data snapshot, curves, evaluation, reference distribution) and its artifact, hash-checked; an
//! import stores it as a new version of this instance, marked as imported.
//!
//! Layout: `SPRIGBN1`, header length (u32 LE), JSON header, the artifact, then the SHA-256 of
//! everything before it. The header names the artifact's SHA-256 (the model card's
//! `artifact_sha256`), so a bundle and an ONNX export of one version can be matched.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sprig_backends::{BackboneKind, ModelArtifact};
use sprig_store::{ModelVersionRecord, NewModelVersion};

use crate::engine::{Engine, FirstVersion};
use crate::error::{CoreError, Result};
use crate::pipeline::PipelineObserver;

const MAGIC: &[u8; 8] = b"SPRIGBN1";
/// Bundle format version written in the header.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    sprig_version: String,
    artifact_sha256: String,
    artifact_bytes: u64,
    record: ModelVersionRecord,
}

impl Engine {
    /// Version `version` as a bundle another instance can import.
    pub fn model_bundle(&self, version: u32) -> Result<Vec<u8>> {
        let (record, _) = self.model_version(version)?;
        let artifact = self.model_file(version)?;
        let header = serde_json::to_vec(&Header {
            format: FORMAT,
            sprig_version: env!("CARGO_PKG_VERSION").into(),
            artifact_sha256: hex::encode(Sha256::digest(&artifact)),
            artifact_bytes: artifact.len() as u64,
            record,
        })
        .expect("a bundle header serialises");
        let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + header.len() + artifact.len() + 32);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&artifact);
        let checksum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&checksum);
        Ok(bytes)
    }

    /// Stores the bundle's version as a new version of this instance (not activated), marked as
    /// imported. Refused when the bundle is damaged or altered (`invalid_bundle`) or when its
    /// backbone or classes do not match this instance's (`bundle_mismatch`).
    pub fn import_bundle(&self, bytes: &[u8]) -> Result<ModelVersionRecord> {
        let (header, artifact_bytes) = parse(bytes)?;
        self.store_bundle(header, artifact_bytes, "import")
    }

    /// Stores a parsed bundle's version with `origin` (`import`, or `bootstrap` for the shipped
    /// first version); the record keeps where it came from under `imported_from`.
    fn store_bundle(
        &self,
        header: Header,
        artifact_bytes: &[u8],
        origin: &str,
    ) -> Result<ModelVersionRecord> {
        let artifact = ModelArtifact::from_bytes(artifact_bytes)
            .map_err(|e| invalid(format!("its artifact does not load: {e}")))?;
        let mut record = header.record;
        if BackboneKind::parse(&record.backbone) != Some(artifact.backbone)
            || record.classes != artifact.classes
        {
            return Err(invalid(
                "its record and its artifact disagree on backbone or classes".into(),
            ));
        }
        self.check_fits(&record)?;
        let source = json!({
            "version": record.version,
            "created_at": record.created_at,
            "origin": record.origin,
            "job_id": record.job_id,
            "sprig_version": header.sprig_version,
            "artifact_sha256": header.artifact_sha256,
        });
        if let Some(hyperparameters) = record.hyperparameters.as_object_mut() {
            hyperparameters.insert("imported_from".into(), source);
        }
        record.created_at = Utc::now();
        record.origin = origin.into();
        record.job_id = None;
        Ok(self.stores.models.create(NewModelVersion {
            record,
            artifact: artifact_bytes.to_vec(),
        })?)
    }

    /// Stores the shipped bundle as version 1 when the config asks for it and it has the
    /// configured backbone; `None` otherwise (said in the log).
    pub(crate) fn shipped_first_version(
        &self,
        shipped: &[u8],
        observer: &mut dyn PipelineObserver,
    ) -> Result<Option<u32>> {
        if self.config().bootstrap.first_version != FirstVersion::Shipped {
            return Ok(None);
        }
        let configured = self.config().training.backbone.name();
        let (header, artifact_bytes) = parse(shipped)?;
        let backbone = &header.record.backbone;
        if backbone != configured {
            tracing::info!(
                configured,
                shipped = %backbone,
                "the shipped first version has another backbone; training version 1 on the demo set instead"
            );
            return Ok(None);
        }
        observer.progress(50.0, "storing the shipped first version");
        Ok(Some(
            self.store_bundle(header, artifact_bytes, "bootstrap")?
                .version,
        ))
    }

    /// A version fits this instance when every class it knows is one this instance knows (from
    /// its data set or its active version; an empty instance knows none and takes any), and it
    /// has the active version's backbone. Fewer classes are fine: versions trained before a class
    /// was added have them too.
    fn check_fits(&self, record: &ModelVersionRecord) -> Result<()> {
        let active = match self.stores.models.active()? {
            Some(version) => self.stores.models.get(version)?,
            None => None,
        };
        let mut known: Vec<String> = self
            .stores
            .images
            .classes()?
            .into_iter()
            .map(|c| c.name)
            .collect();
        known.extend(active.iter().flat_map(|a| a.classes.iter().cloned()));
        let unknown: Vec<&String> = record
            .classes
            .iter()
            .filter(|class| !known.contains(class))
            .collect();
        if !known.is_empty() && !unknown.is_empty() {
            known.sort();
            known.dedup();
            return Err(CoreError::BundleMismatch(format!(
                "the bundle's classes {unknown:?} are neither in this instance's data set nor in \
                 its active version (it knows {known:?})"
            )));
        }
        if let Some(active) = active.filter(|a| a.backbone != record.backbone) {
            return Err(CoreError::BundleMismatch(format!(
                "the bundle's backbone {} is not the active version's ({})",
                record.backbone, active.backbone
            )));
        }
        Ok(())
    }
}

/// A bundle's version record and model file, checked; `None` when `bytes` is not a bundle.
pub(crate) fn unpack(bytes: &[u8]) -> Option<Result<(ModelVersionRecord, &[u8])>> {
    bytes
        .starts_with(MAGIC)
        .then(|| parse(bytes).map(|(header, artifact)| (header.record, artifact)))
}

fn invalid(reason: String) -> CoreError {
    CoreError::InvalidBundle(reason)
}

/// The header and the artifact's bytes of a bundle whose checksums hold.
fn parse(bytes: &[u8]) -> Result<(Header, &[u8])> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| invalid("not a sprig model bundle".into()))?;
    let (content, checksum) = bytes.split_at(bytes.len().saturating_sub(32).max(MAGIC.len()));
    if checksum.len() != 32 || Sha256::digest(content).as_slice() != checksum {
        return Err(invalid(
            "its checksum does not match: the file is damaged or was altered".into(),
        ));
    }
    let body = &body[..body.len() - 32];
    let (length, rest) = body
        .split_first_chunk::<4>()
        .ok_or_else(|| invalid("truncated header".into()))?;
    let length = u32::from_le_bytes(*length) as usize;
    if rest.len() < length {
        return Err(invalid("truncated header".into()));
    }
    let (header, artifact) = rest.split_at(length);
    let header: Header =
        serde_json::from_slice(header).map_err(|e| invalid(format!("unreadable header: {e}")))?;
    if header.format != FORMAT {
        return Err(invalid(format!(
            "bundle format {} (this sprig reads {FORMAT})",
            header.format
        )));
    }
    if artifact.len() as u64 != header.artifact_bytes
        || hex::encode(Sha256::digest(artifact)) != header.artifact_sha256
    {
        return Err(invalid(
            "its artifact does not match the header's hash".into(),
        ));
    }
    Ok((header, artifact))
}
