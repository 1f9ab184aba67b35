//! The PostgreSQL implementation, for several sprig replicas sharing one database: the same
//! traits as the embedded store, so core, jobs and handlers do not know which engine runs.
//!
//! The traits are synchronous (sled is), sqlx is async: every call runs on a small runtime of its
//! own and the caller waits for it. Callers already treat store calls as blocking I/O, and the
//! separate runtime means a caller on any thread, async or not, can wait without starving it.

mod features;
mod images;
pub mod import;
mod jobs;
mod listener;
mod migrations;
mod models;
mod predictions;
mod reviews;
mod rollouts;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::broadcast;

use crate::changes::{Change, ChangeFeed};
use crate::error::{Result, StoreError};
use crate::stores::{Database, Stores};

pub use migrations::LATEST_SCHEMA;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user[:password]@host[:port]/database[?sslmode=...]`.
    pub url: String,
    /// Connections this process keeps at most.
    pub max_connections: u32,
    /// How long a call waits for a connection before it fails (fast 503s while the database is
    /// down, instead of requests piling up).
    pub acquire_timeout: Duration,
    /// Apply pending migrations when opening (`false`: refuse a database that needs them).
    pub migrate: bool,
}

impl PgOptions {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            migrate: true,
        }
    }
}

/// The PostgreSQL database behind every store of a deployment.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    runtime: Arc<OwnRuntime>,
    changes: broadcast::Sender<Change>,
    /// Whether [`PgStore::prepare`] applies migrations or only checks.
    migrate: bool,
}

/// The store's runtime, shut down without waiting when the last handle goes: a runtime dropped
/// the ordinary way from inside another runtime (a server's last handle) panics.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the runtime lives until drop")
            .handle()
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl PgStore {
    /// Connects, applies (or checks) the schema, and starts listening for other replicas'
    /// changes. Fails with [`StoreError::Unavailable`] when the database cannot be reached
    /// within the acquire timeout.
    pub fn connect(options: &PgOptions) -> Result<Self> {
        let store = Self::connect_lazy(options)?;
        store.prepare()?;
        Ok(store)
    }

    /// The store without touching the database yet: connections are made when first needed, and
    /// the listener keeps trying until the database answers. Call [`PgStore::prepare`] before
    /// using it (a server does so in a loop while it answers readiness 503 `store_unavailable`).
    pub fn connect_lazy(options: &PgOptions) -> Result<Self> {
        let connect: PgConnectOptions = options
            .url
            .parse()
            .map_err(|e| StoreError::Engine(format!("invalid PostgreSQL URL: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sprig-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Engine(e.to_string()))?;
        let pool = {
            let _entered = runtime.enter();
            PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_lazy_with(connect)
        };
        let (changes, _) = broadcast::channel(1024);
        let store = Self {
            pool,
            runtime: Arc::new(OwnRuntime(Some(runtime))),
            changes,
            migrate: options.migrate,
        };
        let (pool, sender) = (store.pool.clone(), store.changes.clone());
        store
            .runtime
            .handle()
            .spawn(listener::forward_changes(pool, sender));
        Ok(store)
    }

    /// Applies pending migrations (or, with `migrate` off, checks that there are none).
    /// [`StoreError::Unavailable`] while the database cannot be reached.
    pub fn prepare(&self) -> Result<()> {
        let (pool, migrate) = (self.pool(), self.migrate);
        self.run(async move { migrations::apply(&pool, migrate).await })
    }

    /// The schema version the database is at (after [`PgStore::connect`] applied migrations).
    pub fn schema_version(&self) -> Result<i32> {
        let pool = self.pool.clone();
        self.run(async move { migrations::current(&pool).await })
    }

    /// Every concern of this database as trait objects.
    pub fn into_stores(self) -> Stores {
        let store = Arc::new(self);
        Stores {
            images: store.clone(),
            predictions: store.clone(),
            models: store.clone(),
            jobs: store.clone(),
            features: store.clone(),
            reviews: store.clone(),
            rollouts: store.clone(),
            changes: store.clone(),
            database: store,
        }
    }

    /// Runs `work` on the store's runtime and waits for it: callable from any thread, inside an
    /// async runtime or not.
    fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.runtime.handle().spawn(async move {
            let _ = done.send(work.await);
        });
        result
            .recv()
            .map_err(|_| StoreError::Engine("the PostgreSQL runtime stopped".into()))?
    }

    /// A clone of the pool, to move into a future given to [`PgStore::run`].
    fn pool(&self) -> PgPool {
        self.pool.clone()
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(error.to_string())
            }
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // admin_shutdown, crash_shutdown, cannot_connect_now: the server is restarting.
                Some("57P01" | "57P02" | "57P03") => StoreError::Unavailable(error.to_string()),
                // disk_full
                Some("53100") => StoreError::DiskFull { free: 0, needed: 0 },
                _ => StoreError::Engine(error.to_string()),
            },
            sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
                StoreError::Corrupt(error.to_string())
            }
            _ => StoreError::Engine(error.to_string()),
        }
    }
}

impl ChangeFeed for PgStore {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

impl Database for PgStore {
    fn flush(&self) -> Result<()> {
        // A committed transaction is durable (synchronous_commit); nothing is held back here.
        Ok(())
    }

    fn check(&self) -> Result<()> {
        let pool = self.pool();
        self.run(async move {
            sqlx::query(
                "INSERT INTO write_probe (at) VALUES (now()) \
                 ON CONFLICT (singleton) DO UPDATE SET at = excluded.at",
            )
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    fn size_on_disk(&self) -> Result<u64> {
        let pool = self.pool();
        self.run(async move {
            let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&pool)
                .await?;
            Ok(size.max(0) as u64)
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        let options = self.pool.connect_options();
        format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        )
    }
}

/// Decodes a JSON column into a record type.
fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    Ok(serde_json::from_value(value)?)
}

/// A record as a JSON column value.
fn to_json<T: serde::Serialize>(record: &T) -> Result<serde_json::Value> {
    serde_json::to_value(record).map_err(|e| StoreError::Engine(e.to_string()))
}

/// A stored `bigint` id as the traits' `u64`.
fn id(value: i64) -> u64 {
    value.max(0) as u64
}

/// A trait id as a `bigint` (ids beyond `i64::MAX` cannot exist, so they match nothing).
fn db_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}
