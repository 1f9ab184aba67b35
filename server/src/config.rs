//! Configuration: built-in defaults < `sprig.toml` < `SPRIG_*` environment (nested keys with
//! `__`) < command-line flags. `sprig.example.toml` documents every key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use sprig_core::EngineConfig;

/// `deny_unknown_fields` does not work with `flatten`; [`Config::load`] refuses unknown
/// top-level keys itself (every section denies its own).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub runtimes: RuntimesConfig,
    pub log: LogConfig,
    /// The engine's settings (`backend`, `ingest`, `batching`, `training`, …): core's own type,
    /// at the top level of the file.
    #[serde(flatten)]
    pub engine: EngineConfig,
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
    /// The database's page cache in MiB: what sled keeps in memory of the data dir.
    pub db_cache_mib: u64,
    /// Free space (MiB) kept on the data dir's disk: below it, writes that add data are answered
    /// 507 `insufficient_storage` and readiness fails, until space is freed.
    pub min_free_mib: u64,
    /// Host names (besides the bind address, and loopback names on a loopback bind) that requests
    /// may name in `Host`; others are refused 403 `host_not_allowed` (DNS rebinding). `"*"`: any.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://app.example.com`) besides the server's own that may send writes.
    pub allowed_origins: Vec<String>,
    /// A client must finish sending a request's headers within this time (slow-header clients),
    /// which also bounds how long an idle HTTP/1.1 keep-alive connection waits for its next request.
    pub header_timeout_secs: u64,
    /// A connection with no bytes in either direction for this long is closed.
    pub idle_timeout_secs: u64,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".parse().expect("valid default address"),
            data_dir: PathBuf::from("./sprig-data"),
            request_timeout_secs: 60,
            shutdown_grace_secs: 30,
            db_cache_mib: 64,
            min_free_mib: 256,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            header_timeout_secs: 10,
            idle_timeout_secs: 120,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Which database holds images, versions, predictions and jobs (config `[store]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sled:DIR` (embedded, one process) or `postgres://user@host:port/db` (shared by
    /// replicas). Empty: `sled:` + `server.data_dir`.
    pub url: String,
    /// PostgreSQL connections each replica keeps at most.
    pub max_connections: u32,
    /// How long a request waits for a PostgreSQL connection before it fails with 503
    /// `store_unavailable` (and how long start-up waits for the database).
    pub acquire_timeout_secs: u64,
    /// Apply pending PostgreSQL migrations at start; `false`: refuse to start until
    /// `sprig migrate` has run.
    pub migrate: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 16,
            acquire_timeout_secs: 3,
            migrate: true,
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
    /// Body of `POST /api/models/import` (a model bundle).
    pub bundle_body_bytes: u64,
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
            bundle_body_bytes: 64 * MIB,
            json_body_bytes: MIB,
            batch_max_files: 32,
            upload_max_files: 1000,
        }
    }
}

/// Where the graph runtimes' libraries come from (see `crate::runtimes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimesConfig {
    /// `auto`: a graph runtime the backend wants but that is not found is fetched at start;
    /// `never`: only what is installed is used (air-gapped machines).
    pub fetch: FetchMode,
    /// sprig's runtime cache; empty: the user's cache dir (`~/.cache/sprig/runtimes`).
    pub cache_dir: PathBuf,
    /// How long a start may spend fetching before it falls back to the next backend.
    pub fetch_timeout_secs: u64,
}

impl Default for RuntimesConfig {
    fn default() -> Self {
        Self {
            fetch: FetchMode::Auto,
            cache_dir: PathBuf::new(),
            fetch_timeout_secs: 180,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FetchMode {
    Auto,
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `sprig=debug,poem=info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// The top-level keys of the configuration.
fn top_level_keys() -> Vec<String> {
    let defaults = serde_json::to_value(Config::default()).expect("the config serializes");
    let table = defaults.as_object().expect("the config is a table");
    table.keys().cloned().collect()
}

/// `SPRIG_*` variables that name a config section (`SPRIG_BATCHING__MAX_BATCH_SIZE`). Others are
/// not config: sprig's own tools read `SPRIG_TOKEN` or `SPRIG_BIN` from the same shell, and a
/// server must not refuse to start over them. A typo inside a section is still an error.
fn config_env() -> Env {
    let sections = top_level_keys();
    Env::prefixed("SPRIG_")
        .filter(move |key| {
            let section = key.as_str().split("__").next().unwrap_or_default();
            sections.iter().any(|s| s.eq_ignore_ascii_case(section))
        })
        .split("__")
}

/// Values given on the command line (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub addr: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub store_url: Option<String>,
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
            Some(path) if !path.exists() => {
                return Err(ConfigError::MissingFile(path.to_path_buf()))
            }
            Some(path) => figment.merge(Toml::file_exact(path)),
            None => figment.merge(Toml::file("sprig.toml")),
        };
        figment = figment.merge(config_env());
        if let Some(addr) = overrides.addr {
            figment = figment.merge(("server.addr", addr.to_string()));
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(("server.data_dir", dir.display().to_string()));
        }
        if let Some(url) = &overrides.store_url {
            figment = figment.merge(("store.url", url.clone()));
        }
        if let Some(backend) = &overrides.backend {
            figment = figment.merge(("backend", backend.clone()));
        }
        let given: BTreeMap<String, figment::value::Value> = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let known = top_level_keys();
        if let Some(unknown) = given.keys().find(|key| !known.contains(key)) {
            return Err(ConfigError::Invalid(format!(
                "unknown key `{unknown}`; the configuration has {}",
                known.join(", ")
            )));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The store `store.url` names: `sled:` + `server.data_dir` when it is empty.
    pub fn store_url(&self) -> Result<sprig_store::StoreUrl, ConfigError> {
        if self.store.url.is_empty() {
            return Ok(sprig_store::StoreUrl::Sled(self.server.data_dir.clone()));
        }
        sprig_store::StoreUrl::parse(&self.store.url)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The PostgreSQL pool settings of `[store]`.
    pub fn pg_options(&self) -> sprig_store::PgOptions {
        let mut options = sprig_store::PgOptions::new("");
        options.max_connections = self.store.max_connections.max(1);
        options.acquire_timeout =
            std::time::Duration::from_secs(self.store.acquire_timeout_secs.max(1));
        options.migrate = self.store.migrate;
        options
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        self.store_url()?;
        let cluster = &self.engine.cluster;
        if cluster.heartbeat_secs == 0 || cluster.lease_secs < 2 * cluster.heartbeat_secs {
            return invalid("cluster.heartbeat_secs must be at least 1 and cluster.lease_secs at least two heartbeats");
        }
        if !sprig_backends::BACKEND_CHOICES.contains(&self.engine.backend.as_str()) {
            return invalid(&format!(
                "backend must be one of {:?}, got '{}'",
                sprig_backends::BACKEND_CHOICES,
                self.engine.backend
            ));
        }
        if self.auth.token.as_deref().is_some_and(|t| t.len() < 16) {
            return invalid("auth.token must be at least 16 characters");
        }
        if self.server.header_timeout_secs == 0 || self.server.idle_timeout_secs == 0 {
            return invalid("server.header_timeout_secs and idle_timeout_secs must be at least 1");
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return invalid(
                "server.tls_cert and server.tls_key go together: set both for HTTPS, or neither",
            );
        }
        let training = &self.engine.training;
        if !(0.0..1.0).contains(&training.label_smoothing)
            || !(0.0..).contains(&training.weight_decay)
        {
            return invalid(
                "training.label_smoothing must be in [0, 1) and training.weight_decay at least 0",
            );
        }
        if self.engine.ingest.validation_percent > 50 {
            return invalid("ingest.validation_percent must be at most 50");
        }
        if self.engine.batching.max_batch_size == 0 || self.engine.batching.queue_capacity == 0 {
            return invalid("batching.max_batch_size and queue_capacity must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.engine.review.min_uncertainty) {
            return invalid("review.min_uncertainty must be from 0 to 1");
        }
        let drift = &self.engine.drift;
        if drift.window == 0 || drift.min_predictions < 2 || drift.interval_secs == 0 {
            return invalid(
                "drift.window and drift.interval_secs must be at least 1, drift.min_predictions at least 2",
            );
        }
        if !(0.5 < drift.warning_quantile
            && drift.warning_quantile <= drift.drift_quantile
            && drift.drift_quantile < 1.0)
        {
            return invalid(
                "drift quantiles must satisfy 0.5 < warning_quantile <= drift_quantile < 1",
            );
        }
        let rollout = &self.engine.rollout;
        if rollout.sync_secs == 0 || rollout.min_requests == 0 || rollout.max_latency_ratio <= 0.0 {
            return invalid(
                "rollout.sync_secs and min_requests must be at least 1, max_latency_ratio above 0 \
                 (a min_agreement above 1 never promotes a shadow)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's `Jail` closures return its (large) error type
mod tests {
    use super::*;
    use figment::Jail;

    fn overrides(addr: Option<&str>) -> Overrides {
        Overrides {
            addr: addr.map(|a| a.parse().unwrap()),
            ..Overrides::default()
        }
    }

    #[test]
    fn precedence_is_default_file_env_flag() {
        Jail::expect_with(|jail| {
            let defaults = Config::load(None, &overrides(None)).unwrap();
            assert_eq!(defaults.server.addr.to_string(), "127.0.0.1:8080");
            assert_eq!(defaults.server.data_dir, PathBuf::from("./sprig-data"));

            jail.create_file(
                "custom.toml",
                "[server]\naddr = \"127.0.0.1:7000\"\ndata_dir = \"/from/file\"\n[batching]\nmax_batch_size = 4\n",
            )?;
            let from_file = Config::load(Some(Path::new("custom.toml")), &overrides(None)).unwrap();
            assert_eq!(from_file.server.addr.to_string(), "127.0.0.1:7000");
            assert_eq!(from_file.engine.batching.max_batch_size, 4);

            jail.set_env("SPRIG_SERVER__ADDR", "127.0.0.1:7100");
            jail.set_env("SPRIG_BATCHING__MAX_BATCH_SIZE", "8");
            let from_env = Config::load(Some(Path::new("custom.toml")), &overrides(None)).unwrap();
            assert_eq!(from_env.server.addr.to_string(), "127.0.0.1:7100");
            assert_eq!(
                from_env.server.data_dir,
                PathBuf::from("/from/file"),
                "env leaves other file keys alone"
            );
            assert_eq!(from_env.engine.batching.max_batch_size, 8);

            let from_flag = Config::load(
                Some(Path::new("custom.toml")),
                &overrides(Some("127.0.0.1:7200")),
            )
            .unwrap();
            assert_eq!(from_flag.server.addr.to_string(), "127.0.0.1:7200");
            assert_eq!(from_flag.engine.batching.max_batch_size, 8);
            Ok(())
        });
    }

    #[test]
    fn sprig_toml_in_the_working_directory_is_read_by_default() {
        Jail::expect_with(|jail| {
            jail.create_file("sprig.toml", "backend = \"ndarray\"\n")?;
            assert_eq!(
                Config::load(None, &overrides(None)).unwrap().engine.backend,
                "ndarray"
            );
            Ok(())
        });
    }

    #[test]
    fn a_missing_named_file_and_unknown_keys_are_errors() {
        Jail::expect_with(|jail| {
            assert!(matches!(
                Config::load(Some(Path::new("absent.toml")), &overrides(None)),
                Err(ConfigError::MissingFile(_))
            ));
            jail.create_file("typo.toml", "[server]\nadress = \"x\"\n")?;
            assert!(matches!(
                Config::load(Some(Path::new("typo.toml")), &overrides(None)),
                Err(ConfigError::Invalid(_))
            ));
            jail.set_env("SPRIG_BATCHING__MAX_BACH_SIZE", "8");
            assert!(
                matches!(
                    Config::load(None, &overrides(None)),
                    Err(ConfigError::Invalid(_))
                ),
                "a typo inside a section is an error"
            );
            jail.clear_env();
            jail.create_file("top.toml", "backnd = \"flex\"\n")?;
            assert!(
                matches!(
                    Config::load(Some(Path::new("top.toml")), &overrides(None)),
                    Err(ConfigError::Invalid(_))
                ),
                "an unknown top-level key is an error"
            );
            jail.create_file("smooth.toml", "[training]\nlabel_smoothing = 1.0\n")?;
            assert!(
                matches!(
                    Config::load(Some(Path::new("smooth.toml")), &overrides(None)),
                    Err(ConfigError::Invalid(_))
                ),
                "label smoothing of 1 leaves no label"
            );
            jail.create_file("bad.toml", "backend = \"tpu\"\n")?;
            assert!(matches!(
                Config::load(Some(Path::new("bad.toml")), &overrides(None)),
                Err(ConfigError::Invalid(_))
            ));
            Ok(())
        });
    }

    #[test]
    fn sprig_variables_that_name_no_section_are_not_config() {
        Jail::expect_with(|jail| {
            jail.set_env("SPRIG_TOKEN", "for the load-test client");
            jail.set_env("SPRIG_BIN", "target/debug/sprig");
            jail.set_env("SPRIG_BACKEND", "ndarray");
            let config = Config::load(None, &overrides(None)).unwrap();
            assert_eq!(config.engine.backend, "ndarray");
            assert_eq!(config.auth.token, None);
            Ok(())
        });
    }

    /// The retrain request and `sprig train --fine-tune` say `true` / `false`; the config
    /// takes those too, beside `auto` / `on` / `off` (an environment variable's `true` reaches
    /// the config as a boolean).
    #[test]
    fn fine_tune_takes_true_and_false_as_on_and_off() {
        use sprig_core::FineTuneMode;
        Jail::expect_with(|jail| {
            let fine_tune =
                || Config::load(None, &overrides(None)).map(|c| c.engine.training.fine_tune);
            for (given, expected) in [
                ("true", FineTuneMode::On),
                ("false", FineTuneMode::Off),
                ("on", FineTuneMode::On),
                ("off", FineTuneMode::Off),
                ("auto", FineTuneMode::Auto),
            ] {
                jail.set_env("SPRIG_TRAINING__FINE_TUNE", given);
                assert_eq!(
                    fine_tune().unwrap(),
                    expected,
                    "SPRIG_TRAINING__FINE_TUNE={given}"
                );
            }
            jail.set_env("SPRIG_TRAINING__FINE_TUNE", "sometimes");
            let refused = fine_tune().unwrap_err().to_string();
            assert!(refused.contains("auto, on or off"), "{refused}");
            jail.clear_env();
            jail.create_file("sprig.toml", "[training]\nfine_tune = false\n")?;
            assert_eq!(fine_tune().unwrap(), FineTuneMode::Off);
            Ok(())
        });
    }

    #[test]
    fn the_example_file_lists_every_key_with_its_default() {
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../sprig.example.toml"),
        )
        .unwrap();
        let documented: serde_json::Value =
            figment::Figment::from(figment::providers::Toml::string(&example))
                .extract()
                .unwrap();
        let mut defaults = serde_json::to_value(Config::default()).unwrap();
        // `auth.token` and the TLS files have no default; the example shows them commented out.
        defaults["auth"].as_object_mut().unwrap().remove("token");
        for key in ["tls_cert", "tls_key"] {
            defaults["server"].as_object_mut().unwrap().remove(key);
        }
        assert_eq!(
            documented, defaults,
            "sprig.example.toml must list every key with its default"
        );
    }
}
