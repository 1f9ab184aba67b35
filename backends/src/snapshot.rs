//! Module weights as safetensors bytes: how trained heads and fine-tuned backbone tails are
//! stored inside model artifacts.

use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::error::BackendError;

/// Serialises every tensor of `module`.
pub fn to_bytes<M: ModuleSnapshot>(module: &M) -> Result<Vec<u8>, BackendError> {
    let mut store = SafetensorsStore::from_bytes(None);
    module
        .save_into(&mut store)
        .map_err(|e| BackendError::Artifact(e.to_string()))?;
    store
        .get_bytes()
        .map_err(|e| BackendError::Artifact(e.to_string()))
}

/// Loads [`to_bytes`] output into `module`, which must have the same structure; every tensor
/// must be present.
pub fn load<M: ModuleSnapshot>(
    module: &mut M,
    bytes: &[u8],
    what: &str,
) -> Result<(), BackendError> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()));
    let result = module
        .load_from(&mut store)
        .map_err(|e| BackendError::Artifact(e.to_string()))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(BackendError::Artifact(format!(
            "{what} weights incomplete: missing {:?}, errors {:?}",
            result.missing,
            result
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        )));
    }
    Ok(())
}
