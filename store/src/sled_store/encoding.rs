//! How records sit in sled (JSON values under big-endian u64 keys) and the helpers every tree's
//! code shares: decoding, transaction errors, counters, scans and pages.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Tree;

use crate::error::{Result, StoreError};
use crate::types::{Page, PageRequest};

pub(super) fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

pub(super) fn id_of(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("key is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records serialise to JSON")
}

/// Aborts a transaction with a store error.
pub(super) fn abort<T>(
    error: StoreError,
) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(error))
}

pub(super) fn tx_decode<T: DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    serde_json::from_slice(bytes).map_err(|e| ConflictableTransactionError::Abort(e.into()))
}

pub(super) fn from_tx(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

/// Reads and increments a counter inside a transaction; counters start at 1.
pub(super) fn next_counter(
    meta: &TransactionalTree,
    name: &[u8],
) -> std::result::Result<u64, UnabortableTransactionError> {
    let next = match meta.get(name)? {
        Some(bytes) => u64::from_be_bytes(bytes.as_ref().try_into().unwrap_or([0; 8])).max(1),
        None => 1,
    };
    meta.insert(name, &(next + 1).to_be_bytes())?;
    Ok(next)
}

pub(super) fn scan<T: DeserializeOwned>(tree: &Tree) -> Result<Vec<T>> {
    tree.iter().values().map(|v| decode(&v?)).collect()
}

pub(super) fn paginate<T>(
    items: impl Iterator<Item = Result<T>>,
    page: PageRequest,
) -> Result<Page<T>> {
    let mut total = 0u64;
    let mut selected = Vec::new();
    for item in items {
        let item = item?;
        if total as usize >= page.offset() && selected.len() < page.per_page as usize {
            selected.push(item);
        }
        total += 1;
    }
    Ok(Page {
        items: selected,
        total,
    })
}
