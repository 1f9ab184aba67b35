//! Replicas on one shared database keep in step here: a version activated anywhere is served
//! everywhere (notified at once, re-read after a lost connection, polled as a backstop), a job
//! changed anywhere reaches this replica's live streams, and a job whose replica died is settled
//! after the lease. An embedded store has one process, so none of this runs for it.

use std::sync::Arc;
use std::time::Duration;

use sprig_store::Change;
use tokio::sync::broadcast::error::RecvError;

use crate::engine::Engine;
use crate::error::Result;

impl Engine {
    /// Whether other processes share this engine's store.
    pub fn store_is_shared(&self) -> bool {
        self.stores.database.shared()
    }

    /// Where the data lives (`sled:DIR` or the PostgreSQL address, without password).
    pub fn store_description(&self) -> String {
        self.stores.database.describe()
    }

    /// Recovery of jobs a stopped process left behind; returns the interrupted job ids. On a
    /// store only this process uses every running job is such a job; on a shared one, those whose
    /// worker has been silent for the lease.
    pub fn recover_jobs(&self) -> Result<Vec<u64>> {
        let lease = if self.store_is_shared() {
            Duration::from_secs(self.config().cluster.lease_secs)
        } else {
            Duration::ZERO
        };
        self.retrainer.recover(lease)
    }

    /// Follows the other replicas until the process ends (call only on a shared store).
    pub async fn follow_cluster(self: Arc<Self>) {
        let cluster = self.config().cluster.clone();
        let mut changes = self.stores.changes.subscribe();
        let mut poll = tokio::time::interval(Duration::from_secs(cluster.poll_secs.max(1)));
        let mut sweep = tokio::time::interval(Duration::from_secs(cluster.heartbeat_secs.max(1)));
        loop {
            let follow_model = tokio::select! {
                change = changes.recv() => match change {
                    Ok(Change::ActiveModel(_) | Change::Resync) | Err(RecvError::Lagged(_)) => true,
                    Ok(Change::Job(id)) => {
                        self.blocking(move |engine| engine.retrainer.republish(id)).await;
                        false
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = poll.tick() => true,
                _ = sweep.tick() => {
                    self.blocking(|engine| {
                        let interrupted = engine.recover_jobs()?;
                        if !interrupted.is_empty() {
                            tracing::warn!(
                                ?interrupted,
                                "retrain jobs of a replica that stopped answering; marked failed (interrupted)"
                            );
                        }
                        Ok(())
                    })
                    .await;
                    false
                }
            };
            if follow_model {
                self.blocking(|engine| engine.registry.follow().map(drop))
                    .await;
            }
        }
    }

    /// Runs store work off the async runtime, logging a failure (the next event or tick retries).
    async fn blocking(self: &Arc<Self>, work: impl FnOnce(&Engine) -> Result<()> + Send + 'static) {
        let engine = self.clone();
        match tokio::task::spawn_blocking(move || work(&engine)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "following the other replicas failed; retrying")
            }
            Err(_) => tracing::error!("following the other replicas panicked"),
        }
    }
}
