//! `sprig serve`: open the data dir, start HTTP at once, load (or bootstrap) the model in the
//! background, run the job worker, and shut down cleanly on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::Server;
use sprig_core::{Engine, PipelineObserver, StartupModel};
use sprig_store::{EpochMetrics, SledStore, Stores};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::state::{AppState, Readiness};

/// Opens the data dir's stores, with a clear message when another process holds it.
pub fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    let dir = &config.server.data_dir;
    let cache_bytes = config.server.db_cache_mib * 1024 * 1024;
    let store = SledStore::open_with_cache(dir, cache_bytes).with_context(|| {
        format!(
            "opening the data dir {} (only one sprig process may use a data dir at a time)",
            dir.display()
        )
    })?;
    Ok(store.into_stores()?)
}

/// Refuses to expose an unauthenticated server beyond loopback.
pub fn check_exposure(
    addr: SocketAddr,
    config: &Config,
    insecure_no_auth: bool,
) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && config.auth.token.is_none() && !insecure_no_auth {
        bail!(
            "refusing to listen on {addr} without an API token: set auth.token (or SPRIG_AUTH__TOKEN) \
             so writes need `Authorization: Bearer <token>`, or pass --insecure-no-auth to accept the risk"
        );
    }
    Ok(())
}

pub async fn serve(config: Config, insecure_no_auth: bool) -> anyhow::Result<()> {
    check_exposure(config.server.addr, &config, insecure_no_auth)?;
    let stores = open_stores(&config)?;
    let metrics = Arc::new(Metrics::new());
    let engine = Arc::new(Engine::open(stores, config.engine(), metrics.clone())?);
    tracing::info!(backend = engine.backend_name(), "{}", engine.backend_reason);
    let interrupted = engine.retrainer.recover()?;
    if !interrupted.is_empty() {
        tracing::warn!(
            ?interrupted,
            "retrain jobs were running when sprig last stopped; marked failed (interrupted)"
        );
    }
    let monitor = Monitor::start(&config.server.data_dir);
    let state = Arc::new(AppState::new(
        engine.clone(),
        config.clone(),
        metrics,
        monitor,
    ));

    let acceptor = TcpListener::bind(config.server.addr)
        .into_acceptor()
        .await
        .context("binding the HTTP address")?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .context("the listener has no local address")?;
    println!("sprig listening on http://{local}");
    println!("  web page:  http://{local}/");
    println!("  API docs:  http://{local}/docs  (spec: http://{local}/openapi.json)");
    println!("  data dir:  {}", config.server.data_dir.display());

    spawn_model_startup(state.clone());
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let retrainer = engine.retrainer.clone();
    let worker = tokio::spawn(sprig_jobs::run_worker(
        retrainer.queue(),
        move |task| {
            let retrainer = retrainer.clone();
            async move {
                let outcome = retrainer.run(task).await;
                // Training and loading the new version free a lot at once; trimming walks the
                // heap, so it runs off the async runtime.
                let _ = tokio::task::spawn_blocking(crate::memory::release_freed_memory).await;
                outcome
            }
        },
        async move {
            let _ = worker_stopped.await;
        },
    ));

    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(crate::http::app(state), shutdown_signal(), Some(grace))
        .await?;
    tracing::info!("HTTP stopped; stopping the job worker and flushing the database");
    let _ = stop_worker.send(());
    // A running retrain is not waited for: at the next start it is marked interrupted.
    if tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .is_err()
    {
        tracing::warn!("a retrain was still running at shutdown; it will be marked interrupted");
    }
    engine.shutdown()?;
    println!(
        "sprig stopped; data flushed to {}",
        config.server.data_dir.display()
    );
    Ok(())
}

/// Loads the active version, or bootstraps version 1 from the demo data on an empty data dir.
fn spawn_model_startup(state: Arc<AppState>) {
    tokio::task::spawn_blocking(move || {
        state.set_readiness(Readiness::Starting("loading the model".into()));
        let mut observer = StartupObserver {
            state: &state,
            last_logged: -10.0,
        };
        let outcome = state
            .engine
            .restore_or_bootstrap(crate::demo::images, &mut observer);
        crate::memory::release_freed_memory();
        match outcome {
            Ok(StartupModel::Restored(version)) => ready(&state, &format!("serving model version {version}")),
            Ok(StartupModel::Bootstrapped { version, demo_images }) => ready(
                &state,
                &format!("trained version {version} on {demo_images} demo images (first start); serving it"),
            ),
            Ok(StartupModel::None) => state.set_readiness(Readiness::Failed(
                "no model version exists and bootstrapping is disabled: upload images and start a retrain".into(),
            )),
            Err(error) => {
                tracing::error!(%error, "loading the model failed");
                state.set_readiness(Readiness::Failed(format!("loading the model failed: {error}")));
            }
        }
    });
}

fn ready(state: &AppState, message: &str) {
    state.set_readiness(Readiness::Ready);
    tracing::info!("{message}");
    println!("sprig ready: {message}");
}

/// Reports bootstrap progress through readiness and the log.
struct StartupObserver<'a> {
    state: &'a AppState,
    last_logged: f64,
}

impl PipelineObserver for StartupObserver<'_> {
    fn progress(&mut self, percent: f64, message: &str) {
        self.state.set_readiness(Readiness::Starting(format!(
            "bootstrapping the first model: {message} ({percent:.0}%)"
        )));
        if percent - self.last_logged >= 10.0 {
            self.last_logged = percent;
            tracing::info!("bootstrap {percent:.0}%: {message}");
        }
    }

    fn epoch(&mut self, _metrics: &EpochMetrics, _max_epochs: u32) {}

    fn cancelled(&self) -> bool {
        false
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested: finishing in-flight requests");
}
