//! The `sprig` binary: `serve` (default), `openapi`, `import`, `predict`, `train`, `check`,
//! `migrate`, `migrate-store`, `export`, `models`, `runtimes`.
// The middleware stack's nested endpoint type is deeper than the default limit in release builds.
#![recursion_limit = "256"]

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sprig::cli;
use sprig::config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "sprig",
    version,
    about = "Image classification with the whole MLOps loop in one binary"
)]
struct Cli {
    /// Config file (TOML). Defaults to ./sprig.toml when present.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (database, images, models).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Where the data lives: sled:DIR (embedded, the default: sled:<data dir>) or
    /// postgres://user@host:port/db (shared by replicas).
    #[arg(long, global = true, value_name = "URL")]
    store_url: Option<String>,
    /// Compute backend: auto, flex, ndarray, onnxruntime, openvino or wgpu.
    #[arg(long, global = true)]
    backend: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// Allow listening beyond loopback without an API token.
        #[arg(long)]
        insecure_no_auth: bool,
    },
    /// Print the OpenAPI spec (JSON).
    Openapi,
    /// Import a DIR/<class>/<images> tree into the data dir.
    Import { dir: PathBuf },
    /// Predict image files offline with the active model.
    Predict {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Import DIR/<class>/<images>, train a version offline and write a report.
    Train {
        /// Data to import first (DIR/<class>/<images>); omit to train on what the data dir holds.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Report folder (metrics JSON, training curves and confusion matrix PNGs).
        #[arg(long, default_value = "sprig-report")]
        report: PathBuf,
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        learning_rate: Option<f64>,
        #[arg(long)]
        backbone: Option<String>,
        /// Which activations the head reads: final, every_block or every_block_texture (default:
        /// training.pooling).
        #[arg(long)]
        pooling: Option<String>,
        /// Also fine-tune the last backbone blocks (phase 2): `--fine-tune true|false`.
        #[arg(long)]
        fine_tune: Option<bool>,
        /// Classify each image mirrored too and answer with the two answers' geometric mean
        /// (two forward passes per prediction): `--test-time-flip true|false`.
        #[arg(long)]
        test_time_flip: Option<bool>,
        /// Classify each image in its first N augmented views too (drawn as training draws
        /// them) and answer with the geometric mean of all answers (1 + N forward passes per
        /// prediction; such a version cannot be exported to ONNX).
        #[arg(long, value_name = "N")]
        test_time_views: Option<u32>,
        /// Whether the new version replaces the active one: always, if_better or manual
        /// (default: training.activation_policy).
        #[arg(long)]
        activation_policy: Option<sprig_core::ActivationPolicy>,
        /// Instead of training a version, cross-validate the head over K folds (2-20) and report
        /// each fold's held-out accuracy and macro-F1 with their mean and spread.
        #[arg(long, value_name = "K")]
        cv: Option<usize>,
    },
    /// Verify the data dir: open its database and read every record (the server must be stopped).
    Check,
    /// Apply the PostgreSQL schema migrations (`store.url`) and exit; servers also apply them at
    /// start unless `store.migrate = false`.
    Migrate,
    /// Copy an embedded data dir (default: the configured one) into an empty PostgreSQL
    /// database, keeping every id, and verify the copy (the server must be stopped).
    MigrateStore {
        /// The embedded store to copy (sled:DIR); default: the configured store.
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// The PostgreSQL database to fill (postgres://user@host:port/db).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Copy every labelled image out as OUT/images/<class>/<file> (read back by `sprig import`).
    Export { out: PathBuf },
    /// List, show or activate model versions.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// List the graph runtimes (ONNX Runtime, OpenVINO): where each was found, its version and
    /// precision, or why it is unusable.
    Runtimes {
        #[command(subcommand)]
        action: Option<RuntimesAction>,
    },
}

#[derive(Subcommand)]
enum RuntimesAction {
    /// Fetch the pinned runtime wheels for this platform into the cache (runtimes.cache_dir).
    Fetch,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// sprig's own model file.
    Sprig,
    /// A portable ONNX model and its model card.
    Onnx,
    /// A bundle another sprig imports (`POST /api/models/import`): the version's record and
    /// model file, checksummed.
    Bundle,
}

#[derive(Subcommand)]
enum ModelsAction {
    /// List versions.
    List,
    /// Show one version in full (JSON).
    Show { version: u32 },
    /// Make a version the active one.
    Activate { version: u32 },
    /// Write a version's self-contained model file (read by `sprig_core::embed::Model::from_file`),
    /// with `--format bundle` the bundle another instance imports, or with `--format onnx` a
    /// directory holding `model.onnx` and `model_card.json` (the file checked against the served
    /// model by ONNX Runtime, as the API's export does).
    Export {
        version: u32,
        /// The model file or bundle, or the directory for `--format onnx`.
        file: PathBuf,
        #[arg(long, value_enum, default_value = "sprig")]
        format: ExportFormat,
    },
}

fn main() -> anyhow::Result<()> {
    sprig_core::memory::limit_malloc_arenas();
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Openapi)) {
        print!("{}", sprig::api::spec_json());
        return Ok(());
    }
    let addr = match &cli.command {
        Some(Command::Serve { addr, .. }) => *addr,
        _ => None,
    };
    let overrides = Overrides {
        addr,
        data_dir: cli.data_dir.clone(),
        store_url: cli.store_url.clone(),
        backend: cli.backend.clone(),
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    sprig::init_logging(&config.log.level);
    // Every command that selects a backend discovers the runtimes in the configured cache.
    sprig_backends::runtimes::use_cache_dir(config.runtimes.cache_dir.clone());
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command.unwrap_or(Command::Serve {
        addr: None,
        insecure_no_auth: false,
    }) {
        Command::Serve {
            insecure_no_auth, ..
        } => runtime.block_on(sprig::serve::serve(config, insecure_no_auth)),
        Command::Openapi => unreachable!("handled above"),
        Command::Import { dir } => runtime.block_on(cli::import(&config, &dir)),
        Command::Predict { files, json } => runtime.block_on(cli::predict(&config, &files, json)),
        Command::Train {
            data,
            report,
            epochs,
            learning_rate,
            backbone,
            pooling,
            fine_tune,
            test_time_flip,
            test_time_views,
            activation_policy,
            cv,
        } => runtime.block_on(cli::train(
            &config,
            data.as_deref(),
            &report,
            cli::TrainArgs {
                epochs,
                learning_rate,
                backbone,
                pooling,
                fine_tune,
                test_time_flip,
                test_time_views,
                activation_policy,
                cv,
            },
        )),
        Command::Check => sprig::backup::check(&config),
        Command::Migrate => sprig::store_admin::migrate(&config),
        Command::MigrateStore { from, to } => {
            sprig::store_admin::migrate_store(&config, from.as_deref(), &to)
        }
        Command::Export { out } => sprig::backup::export(&config, &out),
        Command::Models { action } => match action {
            ModelsAction::List => cli::models_list(&config),
            ModelsAction::Show { version } => cli::models_show(&config, version),
            ModelsAction::Export {
                version,
                file,
                format: ExportFormat::Sprig,
            } => cli::models_export(&config, version, &file, false),
            ModelsAction::Export {
                version,
                file,
                format: ExportFormat::Bundle,
            } => cli::models_export(&config, version, &file, true),
            ModelsAction::Export {
                version,
                file,
                format: ExportFormat::Onnx,
            } => cli::models_export_onnx(&config, version, &file),
            ModelsAction::Activate { version } => {
                runtime.block_on(cli::models_activate(&config, version))
            }
        },
        Command::Runtimes { action: None } => sprig::runtimes::list(&config),
        Command::Runtimes {
            action: Some(RuntimesAction::Fetch),
        } => sprig::runtimes::fetch_all(&config),
    }
}
