//! What every request handler shares.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use sprig_core::Engine;
use subtle::ConstantTimeEq;

use crate::api::error::{ApiError, ApiResult};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::monitor::Monitor;

/// Whether the server can take predictions yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStartup {
    /// Loading or bootstrapping the model; the message says what is happening.
    Starting(String),
    Ready,
    /// Start-up failed; the server keeps answering health and read endpoints.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub monitor: Monitor,
    pub started: Instant,
    readiness: RwLock<ModelStartup>,
}

impl AppState {
    pub fn new(
        engine: Arc<Engine>,
        config: Config,
        metrics: Arc<Metrics>,
        monitor: Monitor,
    ) -> Self {
        Self {
            engine,
            config,
            metrics,
            monitor,
            started: Instant::now(),
            readiness: RwLock::new(ModelStartup::Starting("starting".into())),
        }
    }

    pub fn readiness(&self) -> ModelStartup {
        self.readiness
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_readiness(&self, readiness: ModelStartup) {
        *self.readiness.write().unwrap_or_else(|p| p.into_inner()) = readiness;
    }

    /// Whether `presented` may make a request of this kind (constant-time comparison).
    pub fn check_token(&self, presented: Option<&str>, access: Access) -> ApiResult<()> {
        let Some(expected) = self.config.auth.token.as_deref() else {
            return Ok(());
        };
        if access == Access::Read && !self.config.auth.protect_reads {
            return Ok(());
        }
        match presented {
            Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }
}
