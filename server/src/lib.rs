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
pub mod metrics;
pub mod monitor;
mod pages;
mod report;
pub mod runtimes;
pub mod serve;
pub mod state;
pub mod store_admin;
mod tls;

/// Logs to stderr, in colour only on a terminal (a file or a pipe gets plain text); `RUST_LOG`
/// overrides the configured level.
pub fn init_logging(level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // ONNX Runtime logs every graph transformation at info; its warnings are what matter.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},ort=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
