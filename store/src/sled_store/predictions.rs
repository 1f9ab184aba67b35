//! [`PredictionStore`] on sled: the prediction log and its running aggregates.

use sled::Transactional;

use super::encoding::{decode, encode, from_tx, key, tx_decode};
use super::{SledStore, PREDICTION_STATS};
use crate::error::Result;
use crate::stores::PredictionStore;
use crate::types::*;

impl PredictionStore for SledStore {
    fn record(&self, predictions: Vec<PredictionRecord>) -> Result<Vec<u64>> {
        // A record is well under 4 KiB (names are capped at 255 characters).
        self.reserve.check(predictions.len() as u64 * 4096)?;
        let mut predictions = predictions;
        for prediction in &mut predictions {
            if prediction.id == 0 {
                prediction.id = self.next_id()?;
            }
        }
        (&self.predictions, &self.prediction_stats)
            .transaction(|(log, stats_tree)| {
                let mut stats: PredictionStats = match stats_tree.get(PREDICTION_STATS)? {
                    Some(bytes) => tx_decode(&bytes)?,
                    None => PredictionStats::default(),
                };
                for prediction in &predictions {
                    log.insert(&key(prediction.id), encode(prediction))?;
                    stats.add(prediction);
                }
                stats_tree.insert(PREDICTION_STATS, encode(&stats))?;
                Ok(())
            })
            .map_err(from_tx)?;
        Ok(predictions.iter().map(|p| p.id).collect())
    }

    fn list(&self, page: PageRequest) -> Result<Page<PredictionRecord>> {
        let total = self.predictions.len() as u64;
        let items = self
            .predictions
            .iter()
            .rev()
            .skip(page.offset())
            .take(page.per_page as usize)
            .map(|entry| decode(&entry?.1))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, total })
    }

    fn stats(&self) -> Result<PredictionStats> {
        let mut stats: PredictionStats = match self.prediction_stats.get(PREDICTION_STATS)? {
            Some(bytes) => decode(&bytes)?,
            None => PredictionStats::default(),
        };
        stats.confidence_histogram.resize(CONFIDENCE_BUCKETS, 0);
        Ok(stats)
    }

    fn next_id(&self) -> Result<u64> {
        // sled's generator is monotonic across restarts, so ids order predictions by time.
        Ok(self.db.generate_id()? + 1)
    }

    fn prune(&self, max_count: u64, older_than: Option<Timestamp>) -> Result<u64> {
        let mut excess = (self.predictions.len() as u64).saturating_sub(max_count);
        let mut deleted = 0;
        // Keys are ids, which increase with time: oldest first.
        for entry in self.predictions.iter() {
            let (id, value) = entry?;
            if excess > 0 {
                excess -= 1;
            } else {
                let Some(cutoff) = older_than else { break };
                if decode::<PredictionRecord>(&value)?.created_at >= cutoff {
                    break;
                }
            }
            self.predictions.remove(id)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    fn set_label(&self, id: u64, class: &str) -> Result<bool> {
        let mut failure = None;
        let found = self.predictions.fetch_and_update(key(id), |value| {
            let mut record: PredictionRecord = match value.map(decode).transpose() {
                Ok(record) => record?,
                Err(error) => {
                    failure = Some(error);
                    return value.map(<[u8]>::to_vec);
                }
            };
            record.label = Some(class.to_string());
            Some(encode(&record))
        })?;
        match failure {
            Some(error) => Err(error),
            None => Ok(found.is_some()),
        }
    }
}
