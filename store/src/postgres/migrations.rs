//! Embedded migrations: numbered SQL scripts applied in order, in one transaction each, under an
//! advisory lock so replicas starting together apply them once. The version reached is recorded
//! in `sprig_schema`; a database from a newer sprig is refused, as the embedded store refuses a
//! data dir from another schema version.

use sqlx::PgPool;

use crate::error::{Result, StoreError};

/// The migrations, oldest first; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_1.sql"),
    include_str!("schema_2.sql"),
    include_str!("schema_3.sql"),
    include_str!("schema_4.sql"),
];

/// The schema version this build writes and reads.
pub const LATEST_SCHEMA: i32 = MIGRATIONS.len() as i32;

/// Any constant will do: it only has to be the same in every replica.
const MIGRATION_LOCK: i64 = 0x5370_7269_6700_0001;

/// Brings the schema to [`LATEST_SCHEMA`] (or, with `apply` false, checks that it is there).
pub(super) async fn apply(pool: &PgPool, apply: bool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS sprig_schema (version integer NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let found: Option<i32> = sqlx::query_scalar("SELECT max(version) FROM sprig_schema")
        .fetch_one(&mut *tx)
        .await?;
    let found = found.unwrap_or(0);
    if found > LATEST_SCHEMA || (!apply && found != LATEST_SCHEMA) {
        return Err(StoreError::SchemaMismatch {
            found: found as u32,
            expected: LATEST_SCHEMA as u32,
        });
    }
    for (index, script) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i32 + 1;
        tracing::info!(version, "applying PostgreSQL migration");
        sqlx::raw_sql(*script).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO sprig_schema (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The schema version recorded in the database.
pub(super) async fn current(pool: &PgPool) -> Result<i32> {
    let found: Option<i32> = sqlx::query_scalar("SELECT max(version) FROM sprig_schema")
        .fetch_one(pool)
        .await?;
    Ok(found.unwrap_or(0))
}
