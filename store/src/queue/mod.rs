//! The durable task queue behind sprig's background jobs (apalis runs on top of it, see the
//! `sprig-jobs` crate). The trait knows nothing about apalis: payloads are bytes and ids are
//! `u64`, so another engine can implement it and [`crate::conformance`] checks that it behaves.
//!
//! A task's life: `pending` → `running` (claimed by a worker) → `done` | `failed` | `killed`.
//! A claimed task may also go back to `pending` when its worker gives it up before starting it.

mod sled_queue;
mod task;

pub use sled_queue::SledTaskQueue;
pub use task::{ClaimedTask, TaskOutcome, TaskQueue, TaskRecord, TaskStatus, WorkerRecord};
