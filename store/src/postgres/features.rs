//! [`FeatureCache`] on PostgreSQL: little-endian f32 vectors keyed by (hash, backbone, view),
//! shared by every replica, so a retrain on any of them reuses what another computed.

use super::{id, PgStore};
use crate::error::Result;
use crate::stores::FeatureCache;
use crate::types::{feature_bytes, feature_values, FeatureKey};

impl FeatureCache for PgStore {
    fn get(&self, key: &FeatureKey) -> Result<Option<Vec<f32>>> {
        let (pool, key) = (self.pool(), key.clone());
        self.run(async move {
            let bytes: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT vector FROM features WHERE sha256 = $1 AND backbone = $2 AND view = $3",
            )
            .bind(&key.sha256)
            .bind(&key.backbone)
            .bind(key.view as i32)
            .fetch_optional(&pool)
            .await?;
            Ok(bytes.map(|b| feature_values(&b)))
        })
    }

    fn put(&self, entries: Vec<(FeatureKey, Vec<f32>)>) -> Result<()> {
        let pool = self.pool();
        let mut entries = entries;
        // One order for every writer: two replicas caching the same vectors at once (both
        // bootstrapping) would otherwise lock the same rows in opposite orders and deadlock.
        entries.sort_by(|(a, _), (b, _)| {
            (&a.sha256, &a.backbone, a.view).cmp(&(&b.sha256, &b.backbone, b.view))
        });
        entries.dedup_by(|(a, _), (b, _)| a == b);
        self.run(async move {
            let mut hashes = Vec::with_capacity(entries.len());
            let mut backbones = Vec::with_capacity(entries.len());
            let mut views = Vec::with_capacity(entries.len());
            let mut vectors = Vec::with_capacity(entries.len());
            for (key, values) in entries {
                hashes.push(key.sha256);
                backbones.push(key.backbone);
                views.push(key.view as i32);
                vectors.push(feature_bytes(&values));
            }
            sqlx::query(
                "INSERT INTO features (sha256, backbone, view, vector) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::bytea[]) \
                 ON CONFLICT (sha256, backbone, view) DO UPDATE SET vector = excluded.vector",
            )
            .bind(hashes)
            .bind(backbones)
            .bind(views)
            .bind(vectors)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn count(&self) -> Result<u64> {
        let pool = self.pool();
        self.run(async move {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM features")
                .fetch_one(&pool)
                .await?;
            Ok(id(count))
        })
    }
}
