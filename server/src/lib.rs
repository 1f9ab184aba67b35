//! The sprig server: configuration, the HTTP API and web page, monitoring, and the CLI commands.
//! Domain logic lives in `sprig-core`; this crate parses, calls and maps.

pub mod api;
pub mod backup;
pub mod cli;
pub mod config;
mod demo;
pub mod guard;
pub mod http;
mod listen;
pub mod memory;
pub mod metrics;
pub mod monitor;
mod report;
pub mod serve;
pub mod state;

/// Logs to stderr; `RUST_LOG` overrides the configured level.
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
