//! Changes other processes made to a shared store, for the replicas that must react to them (the
//! hot swap, live job updates). An embedded store has one process, so it reports nothing.

use tokio::sync::broadcast;

/// Something another process (or this one) changed in a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The active model version is now this one.
    ActiveModel(u32),
    /// This job's record changed.
    Job(u64),
    /// Notifications may have been lost (the connection that carries them dropped and came
    /// back): re-read whatever you follow.
    Resync,
}

/// Where changes arrive. A subscriber that falls behind gets `Lagged` and should re-read.
pub trait ChangeFeed: Send + Sync {
    fn subscribe(&self) -> broadcast::Receiver<Change>;
}

/// The feed of a store only one process uses: nothing ever arrives.
pub struct NoChanges(broadcast::Sender<Change>);

impl Default for NoChanges {
    fn default() -> Self {
        Self(broadcast::channel(1).0)
    }
}

impl ChangeFeed for NoChanges {
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.0.subscribe()
    }
}
