//! `sprig serve`: open the data dir, start HTTP at once, load (or bootstrap) the model in the
//! background, run the job worker, and shut down cleanly on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sprig_core::{Engine, PipelineObserver, StartupModel};
use sprig_store::EpochMetrics;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::state::{AppState, ModelStartup};
use crate::store_admin::open_stores;

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
    let tls = crate::tls::acceptor(&config)?;
    crate::tls::warn_if_token_in_clear(config.server.addr, &config);
    raise_open_file_limit();
    // Before selection, so that a runtime fetched now is the one selection finds.
    let prepared = config.clone();
    tokio::task::spawn_blocking(move || crate::runtimes::prepare(&prepared)).await?;
    let stores = open_stores(&config)?;
    let metrics = Arc::new(Metrics::new());
    let engine = Arc::new(Engine::open(
        stores,
        config.engine.clone(),
        metrics.clone(),
    )?);
    tracing::info!(
        backend = engine.backend_name(),
        "{}",
        engine.backend_reason()
    );
    let interrupted = engine.recover_jobs()?;
    if !interrupted.is_empty() {
        tracing::warn!(
            ?interrupted,
            "retrain jobs were running when sprig last stopped; marked failed (interrupted)"
        );
    }
    if engine.store_is_shared() {
        // Versions activated, jobs changed and replicas lost elsewhere reach this one.
        tokio::spawn(engine.clone().follow_cluster());
    }
    let monitor = Monitor::start(&config.server.data_dir);
    let state = Arc::new(AppState::new(
        engine.clone(),
        config.clone(),
        metrics,
        monitor,
    ));

    let listener = tokio::net::TcpListener::bind(config.server.addr)
        .await
        .context("binding the HTTP address")?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("sprig listening on {scheme}://{local}");
    println!("  web page:  {scheme}://{local}/");
    println!("  API docs:  {scheme}://{local}/docs  (spec: {scheme}://{local}/openapi.json)");
    println!("  store:     {}", engine.store_description());

    spawn_model_startup(state.clone());
    spawn_history_pruning(engine.clone());
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker_engine = engine.clone();
    let worker = tokio::spawn(sprig_jobs::run_worker(
        engine.retrain_queue(),
        move |task| {
            let engine = worker_engine.clone();
            async move {
                let outcome = engine.run_retrain(task).await;
                // Training and loading the new version free a lot at once; trimming walks the
                // heap, so it runs off the async runtime.
                let _ = tokio::task::spawn_blocking(sprig_core::memory::release_freed_memory).await;
                outcome
            }
        },
        async move {
            let _ = worker_stopped.await;
        },
    ));

    let timeouts = crate::listen::Timeouts {
        header: Duration::from_secs(config.server.header_timeout_secs),
        idle: Duration::from_secs(config.server.idle_timeout_secs),
        grace: Duration::from_secs(config.server.shutdown_grace_secs),
    };
    crate::listen::serve(
        listener,
        crate::http::app(state),
        tls,
        timeouts,
        shutdown_signal(),
    )
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
    let store = engine.store_description();
    shut_down_within(engine, SHUTDOWN_FLUSH_LIMIT)?;
    println!("sprig stopped; data flushed to {store}");
    Ok(())
}

/// Raises the soft limit on open files to the hard one: every connection, and every part of a
/// multipart upload (spooled to a temp file), holds a descriptor, and the usual soft limit (1024)
/// is reached by one large upload before its file-count check can answer.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write the struct passed by pointer.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
                && limit.rlim_cur < limit.rlim_max
            {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
}

/// How long the final flush may take. A database that cannot write (a full disk) must not keep
/// the process, and its data-dir lock, alive forever.
const SHUTDOWN_FLUSH_LIMIT: Duration = Duration::from_secs(20);

fn shut_down_within(engine: Arc<Engine>, limit: Duration) -> anyhow::Result<()> {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(engine.shutdown());
    });
    match finished.recv_timeout(limit) {
        Ok(result) => Ok(result?),
        Err(_) => bail!(
            "the database did not finish flushing within {limit:?} (is the disk full?); \
             stopping anyway: writes acknowledged before were already flushed"
        ),
    }
}

/// Applies the prediction retention policy at start and then every minute.
fn spawn_history_pruning(engine: Arc<Engine>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            let engine = engine.clone();
            match tokio::task::spawn_blocking(move || engine.prune_predictions()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(deleted)) => tracing::info!(deleted, "pruned the prediction history"),
                Ok(Err(error)) => tracing::warn!(%error, "pruning the prediction history failed"),
                Err(_) => return,
            }
        }
    });
}

/// Loads the active version, or bootstraps version 1 from the demo data on an empty data dir.
fn spawn_model_startup(state: Arc<AppState>) {
    tokio::task::spawn_blocking(move || {
        state.set_readiness(ModelStartup::Starting("loading the model".into()));
        let mut observer = StartupObserver {
            state: &state,
            last_logged: -10.0,
        };
        let outcome = state
            .engine
            .restore_or_bootstrap(crate::demo::images, &mut observer);
        sprig_core::memory::release_freed_memory();
        match outcome {
            Ok(StartupModel::Restored(version)) => ready(&state, &format!("serving model version {version}")),
            Ok(StartupModel::Bootstrapped { version, demo_images }) => ready(
                &state,
                &format!("trained version {version} on {demo_images} demo images (first start); serving it"),
            ),
            Ok(StartupModel::None) => state.set_readiness(ModelStartup::Failed(
                "no model version exists and bootstrapping is disabled: upload images and start a retrain".into(),
            )),
            Err(error) => {
                tracing::error!(%error, "loading the model failed");
                state.set_readiness(ModelStartup::Failed(format!("loading the model failed: {error}")));
            }
        }
    });
}

fn ready(state: &AppState, message: &str) {
    state.set_readiness(ModelStartup::Ready);
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
        self.state.set_readiness(ModelStartup::Starting(format!(
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
