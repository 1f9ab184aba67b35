//! [`ReviewStore`] on sled: items by prediction id, the pending ones indexed by rank, by age and
//! by content hash (one pending item per image), their bytes by content hash.

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use super::encoding::{decode, encode, from_tx, id_of, key, paginate, scan, tx_decode};
use super::{SledStore, REVIEW_EVICTED, REVIEW_KEPT_BYTES};
use crate::error::{Result, StoreError};
use crate::review::{ReviewItem, ReviewOutcome, ReviewState, ReviewSummary};
use crate::stores::ReviewStore;
use crate::types::{Page, PageRequest};

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

fn read_u64(tree: &TransactionalTree, name: &[u8]) -> TxResult<u64> {
    Ok(tree.get(name)?.map_or(0, |v| {
        u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]))
    }))
}

fn add_u64(tree: &TransactionalTree, name: &[u8], delta: i64) -> TxResult<()> {
    let value = read_u64(tree, name)?.saturating_add_signed(delta);
    tree.insert(name, &value.to_be_bytes())?;
    Ok(())
}

impl SledStore {
    /// Takes a pending item out of the rank and age indexes and drops its bytes (inside a
    /// transaction over the review trees).
    fn release(
        (meta, _items, rank, age, blobs, pending_hashes): &ReviewTrees,
        item: &ReviewItem,
    ) -> TxResult<()> {
        rank.remove(&item.rank_key())?;
        age.remove(&key(item.prediction_id))?;
        let sha = item.image_sha256.as_bytes();
        pending_hashes.remove(sha)?;
        if blobs.remove(sha)?.is_some() {
            add_u64(meta, REVIEW_KEPT_BYTES, -(item.size_bytes as i64))?;
        }
        Ok(())
    }

    fn review_trees(
        &self,
    ) -> (
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
    ) {
        (
            &self.meta,
            &self.review_items,
            &self.review_rank,
            &self.review_age,
            &self.review_blobs,
            &self.review_hashes,
        )
    }

    fn kept_bytes(&self) -> Result<u64> {
        Ok(self.meta.get(REVIEW_KEPT_BYTES)?.map_or(0, |v| {
            u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]))
        }))
    }

    /// Evicts the oldest pending item; false when none is left.
    fn evict_oldest(&self) -> Result<Option<u64>> {
        let Some(entry) = self.review_age.iter().next() else {
            return Ok(None);
        };
        let id = id_of(&entry?.0)?;
        self.review_trees()
            .transaction(|trees| {
                let (meta, items, ..) = trees;
                if let Some(bytes) = items.get(key(id))? {
                    let item: ReviewItem = tx_decode(&bytes)?;
                    Self::release(trees, &item)?;
                    items.remove(&key(id))?;
                    add_u64(meta, REVIEW_EVICTED, 1)?;
                }
                Ok(())
            })
            .map_err(from_tx)?;
        Ok(Some(id))
    }
}

type ReviewTrees = (
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
);

impl ReviewStore for SledStore {
    fn keep(&self, item: ReviewItem, bytes: Vec<u8>, max_bytes: u64) -> Result<Vec<u64>> {
        self.reserve.check(bytes.len() as u64)?;
        // Eviction reads the age index outside a transaction (sled's cannot scan): keeps and
        // settlements of this store take turns.
        let _turn = self.review_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut item = item;
        item.state = ReviewState::Pending;
        item.size_bytes = bytes.len() as u64;
        let kept = self
            .review_trees()
            .transaction(|(meta, items, rank, age, blobs, pending_hashes)| {
                let id = key(item.prediction_id);
                let sha = item.image_sha256.as_bytes();
                if items.get(id)?.is_some() || pending_hashes.get(sha)?.is_some() {
                    return Ok(false);
                }
                items.insert(&id, encode(&item))?;
                rank.insert(&item.rank_key(), &id)?;
                age.insert(&id, &[])?;
                blobs.insert(sha, bytes.as_slice())?;
                add_u64(meta, REVIEW_KEPT_BYTES, item.size_bytes as i64)?;
                pending_hashes.insert(sha, &id)?;
                Ok(true)
            })
            .map_err(from_tx)?;
        let mut evicted = Vec::new();
        if kept {
            while self.kept_bytes()? > max_bytes {
                match self.evict_oldest()? {
                    Some(id) => evicted.push(id),
                    None => break,
                }
            }
        }
        Ok(evicted)
    }

    fn pending(&self, page: PageRequest) -> Result<Page<ReviewItem>> {
        let items = self.review_rank.iter().values().map(|id| {
            let id = id?;
            let bytes = self.review_items.get(&id)?.ok_or_else(|| {
                StoreError::Corrupt("review rank points to a missing item".into())
            })?;
            decode(&bytes)
        });
        paginate(items, page)
    }

    fn get(&self, prediction_id: u64) -> Result<Option<ReviewItem>> {
        self.review_items
            .get(key(prediction_id))?
            .map(|v| decode(&v))
            .transpose()
    }

    fn image(&self, prediction_id: u64) -> Result<Option<Vec<u8>>> {
        let Some(item) = ReviewStore::get(self, prediction_id)? else {
            return Ok(None);
        };
        if item.state != ReviewState::Pending {
            return Ok(None);
        }
        Ok(self
            .review_blobs
            .get(item.image_sha256.as_bytes())?
            .map(|v| v.to_vec()))
    }

    fn settle(&self, prediction_id: u64, outcome: &ReviewOutcome) -> Result<Option<ReviewItem>> {
        let _turn = self.review_lock.lock().unwrap_or_else(|p| p.into_inner());
        let at = chrono::Utc::now();
        self.review_trees()
            .transaction(|trees| {
                let items = &trees.1;
                let Some(bytes) = items.get(key(prediction_id))? else {
                    return Ok(None);
                };
                let mut item: ReviewItem = tx_decode(&bytes)?;
                if item.state == ReviewState::Pending {
                    Self::release(trees, &item)?;
                    item.settle(outcome, at);
                    items.insert(&key(prediction_id), encode(&item))?;
                }
                Ok(Some(item))
            })
            .map_err(from_tx)
    }

    fn summary(&self) -> Result<ReviewSummary> {
        let mut summary = ReviewSummary {
            pending: self.review_age.len() as u64,
            kept_bytes: self.kept_bytes()?,
            evicted: self.meta.get(REVIEW_EVICTED)?.map_or(0, |v| {
                u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]))
            }),
            ..ReviewSummary::default()
        };
        for item in scan::<ReviewItem>(&self.review_items)? {
            summary.count_settled(&item);
        }
        Ok(summary)
    }

    fn items(&self) -> Result<Vec<ReviewItem>> {
        scan(&self.review_items)
    }
}
