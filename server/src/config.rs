//! Configuration: built-in defaults < `sprig.toml` < `SPRIG_*` environment (nested keys with
//! `__`) < command-line flags. `sprig.example.toml` documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use sprig_core::pipeline::TrainingConfig;
use sprig_core::{BatchingConfig, BootstrapConfig, EngineConfig, IngestLimits};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    /// `auto`, `flex`, `ndarray` or `wgpu`.
    pub backend: String,
    pub ingest: IngestLimits,
    pub batching: BatchingConfig,
    pub training: TrainingConfig,
    pub bootstrap: BootstrapConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        let engine = EngineConfig::default();
        Self {
            server: ServerConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            backend: engine.backend,
            ingest: engine.ingest,
            batching: engine.batching,
            training: engine.training,
            bootstrap: engine.bootstrap,
            log: LogConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Requests running longer are answered 503 `request_timeout` (streams are exempt).
    pub request_timeout_secs: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".parse().expect("valid default address"),
            data_dir: PathBuf::from("./sprig-data"),
            request_timeout_secs: 60,
            shutdown_grace_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// When set, writes need `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Also require the token for reads (health endpoints stay open).
    pub protect_reads: bool,
}

/// Request size limits; exceeding one is a JSON 413.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Body of `POST /api/predict`.
    pub predict_body_bytes: u64,
    /// Body of `POST /api/predict/batch`.
    pub batch_body_bytes: u64,
    /// Body of `POST /api/images`.
    pub upload_body_bytes: u64,
    /// Any other request body (JSON).
    pub json_body_bytes: u64,
    pub batch_max_files: usize,
    pub upload_max_files: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        Self {
            predict_body_bytes: 20 * MIB,
            batch_body_bytes: 100 * MIB,
            upload_body_bytes: 500 * MIB,
            json_body_bytes: MIB,
            batch_max_files: 32,
            upload_max_files: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `sprig=debug,poem=info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

/// Values given on the command line (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub addr: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub backend: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads the layered configuration. An explicitly named file must exist; the default
    /// `sprig.toml` in the working directory is optional.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        figment = match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.to_path_buf())),
            Some(path) => figment.merge(Toml::file_exact(path)),
            None => figment.merge(Toml::file("sprig.toml")),
        };
        figment = figment.merge(Env::prefixed("SPRIG_").split("__"));
        if let Some(addr) = overrides.addr {
            figment = figment.merge(("server.addr", addr.to_string()));
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(("server.data_dir", dir.display().to_string()));
        }
        if let Some(backend) = &overrides.backend {
            figment = figment.merge(("backend", backend.clone()));
        }
        let config: Config = figment.extract().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if !sprig_backends::BACKEND_CHOICES.contains(&self.backend.as_str()) {
            return invalid(&format!("backend must be one of {:?}, got '{}'", sprig_backends::BACKEND_CHOICES, self.backend));
        }
        if self.auth.token.as_deref().is_some_and(|t| t.len() < 16) {
            return invalid("auth.token must be at least 16 characters");
        }
        if self.ingest.validation_percent > 50 {
            return invalid("ingest.validation_percent must be at most 50");
        }
        if self.batching.max_batch_size == 0 || self.batching.queue_capacity == 0 || self.batching.workers == 0 {
            return invalid("batching.max_batch_size, queue_capacity and workers must be at least 1");
        }
        Ok(())
    }

    /// The engine part of the configuration.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            backend: self.backend.clone(),
            ingest: self.ingest,
            batching: self.batching.clone(),
            training: self.training.clone(),
            bootstrap: self.bootstrap.clone(),
        }
    }
}
