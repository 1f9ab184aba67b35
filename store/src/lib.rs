//! sprig's storage, split by concern into small traits so the engine can change (sled embedded,
//! PostgreSQL for several replicas) without touching handlers or jobs. [`open`] picks the engine
//! from a URL; [`conformance`] holds the behaviour every implementation must show.

mod changes;
pub mod conformance;
mod error;
pub mod pg_test_cluster;
mod postgres;
mod resolver;
mod review;
mod rollout;
mod sled_store;
pub mod space;
mod stores;
mod types;

pub use changes::{Change, ChangeFeed, NoChanges};
pub use postgres::import::ImportReport;
pub use postgres::{PgOptions, PgStore, LATEST_SCHEMA as POSTGRES_SCHEMA};
pub use resolver::{open, StoreUrl};
pub use review::*;
pub use rollout::*;

pub use error::{Result, StoreError};
pub use sled_store::SledStore;
pub use stores::{
    Database, FeatureCache, ImageStore, JobStore, ModelStore, PredictionStore, ReviewStore,
    RolloutStore, Stores, SCHEMA_VERSION,
};
pub use types::*;
