//! The explanation service the engine holds: the explainer of the last version explained, the
//! one permit explanations share, and the low-priority threads they compute on (the use cases are
//! in [`crate::explain`]).

use std::sync::{Arc, Mutex};

use sprig_backends::explain::Explainer;
use tokio::sync::Semaphore;

use crate::error::{CoreError, Result};

/// The explainer of the last version explained, the one permit explanations share, and the
/// threads they compute on.
pub(crate) struct Explanations {
    pub(crate) explainer: Mutex<Option<(u32, Arc<Explainer>)>>,
    pub(crate) permit: Semaphore,
    /// burn's CPU backend parallelises with rayon; work started on this pool stays on it.
    pool: rayon::ThreadPool,
}

impl Explanations {
    pub(crate) fn new() -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("sprig-explain-{i}"))
            .start_handler(|_| crate::priority::lowest_priority())
            .build()
            .expect("the explanation threads start");
        Self {
            explainer: Mutex::new(None),
            permit: Semaphore::new(1),
            pool,
        }
    }

    /// Runs `work` on the explanation threads.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let _ = done.send(work());
        });
        result.await.map_err(|_| CoreError::ShuttingDown)
    }
}
