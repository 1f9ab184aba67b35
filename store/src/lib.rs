//! sprig's storage, split by concern into small traits so the engine can change (sled now, a
//! PostgreSQL implementation for multi-replica deployments later) without touching handlers or
//! jobs. [`conformance`] holds the behaviour every implementation must show.

pub mod conformance;
mod error;
pub mod queue;
mod sled_store;
pub mod space;
mod stores;
mod types;

pub use error::{Result, StoreError};
pub use queue::{TaskQueue, TaskRecord, TaskStatus};
pub use sled_store::SledStore;
pub use stores::{
    Database, FeatureCache, ImageStore, JobStore, ModelStore, PredictionStore, Stores,
    SCHEMA_VERSION,
};
pub use types::*;
