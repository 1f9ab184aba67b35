//! `sprig serve`: open the data dir, start HTTP at once, load (or bootstrap) the model in the
//! background, run the job worker, and shut down cleanly on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sprig_core::{Engine, PipelineObserver, StartupModel};
use sprig_store::{EpochMetrics, PgStore, StoreError, StoreUrl, Stores};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::state::{AppState, ModelStartup};
use crate::store_admin::{connect_postgres_lazily, describe_postgres_error, open_stores};

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
    let (stores, waiting_for) = open_serving_stores(&config)?;
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

    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(start_in_background(
        state.clone(),
        waiting_for,
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

/// The stores to serve from. An embedded store is opened (or the start fails). PostgreSQL is
/// connected lazily: when it does not answer yet, the server starts anyway, answers readiness 503
/// `store_unavailable`, and [`start_in_background`] waits for it; any other failure (a database
/// from a newer sprig, a bad URL) fails the start.
fn open_serving_stores(config: &Config) -> anyhow::Result<(Stores, Option<PgStore>)> {
    let url = config.store_url()?;
    if !matches!(url, StoreUrl::Postgres(_)) {
        return Ok((open_stores(config)?, None));
    }
    let store = connect_postgres_lazily(config, &url)?;
    match store.prepare() {
        Ok(()) => Ok((store.into_stores(), None)),
        Err(StoreError::Unavailable(error)) => {
            tracing::error!(
                store = %url.display(),
                %error,
                "PostgreSQL does not answer; serving readiness 503 store_unavailable and \
                 retrying every {} s",
                DATABASE_RETRY.as_secs()
            );
            Ok((store.clone().into_stores(), Some(store)))
        }
        Err(error) => Err(describe_postgres_error(config, &url, error)),
    }
}

/// How often a start waits for PostgreSQL to answer.
const DATABASE_RETRY: Duration = Duration::from_secs(2);

/// Everything that needs the store, once it answers: settling jobs a stopped process left,
/// following the other replicas, pruning the history, loading (or bootstrapping) the model, and
/// then running the job worker until `shutdown`.
async fn start_in_background(
    state: Arc<AppState>,
    waiting_for: Option<PgStore>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Some(store) = waiting_for {
        state.set_readiness(ModelStartup::Starting("waiting for the database".into()));
        loop {
            tokio::time::sleep(DATABASE_RETRY).await;
            let attempt = store.clone();
            match tokio::task::spawn_blocking(move || attempt.prepare()).await {
                Ok(Ok(())) => break,
                Ok(Err(StoreError::Unavailable(_))) => continue,
                Ok(Err(error)) => {
                    tracing::error!(%error, "preparing the database failed");
                    state.set_readiness(ModelStartup::Failed(format!(
                        "preparing the database failed: {error}"
                    )));
                    return;
                }
                Err(_) => return,
            }
        }
        tracing::info!("the database answers; starting");
    }
    let engine = state.engine.clone();
    let recovery = engine.clone();
    match tokio::task::spawn_blocking(move || recovery.recover_jobs()).await {
        Ok(Ok(interrupted)) if !interrupted.is_empty() => tracing::warn!(
            ?interrupted,
            "retrain jobs were running when their sprig stopped; marked failed (interrupted)"
        ),
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%error, "settling interrupted jobs failed"),
        Err(_) => return,
    }
    if engine.store_is_shared() {
        // Versions activated, jobs changed and replicas lost elsewhere reach this one.
        tokio::spawn(engine.clone().follow_cluster());
    }
    spawn_model_startup(state.clone());
    spawn_history_pruning(engine.clone());
    spawn_drift_sampling(state.clone());
    tokio::spawn(engine.clone().follow_rollouts());
    let worker_engine = engine.clone();
    let outcome = sprig_jobs::run_worker(
        engine.retrain_queue(),
        move |job_id, overrides| {
            let engine = worker_engine.clone();
            async move {
                let outcome = engine.run_retrain(job_id, overrides).await;
                // Training and loading the new version free a lot at once; trimming walks the
                // heap, so it runs off the async runtime.
                let _ = tokio::task::spawn_blocking(sprig_core::memory::release_freed_memory).await;
                outcome
            }
        },
        shutdown,
    )
    .await;
    if let Err(error) = outcome {
        tracing::error!(%error, "the job worker stopped");
    }
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

/// Every `drift.interval_secs`: a point of the drift history and the Prometheus gauges.
fn spawn_drift_sampling(state: Arc<AppState>) {
    tokio::spawn(async move {
        let interval = Duration::from_secs(state.engine.config().drift.interval_secs.max(1));
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let engine = state.engine.clone();
            match tokio::task::spawn_blocking(move || engine.sample_drift()).await {
                Ok(Ok(report)) => state.metrics.observe_drift(&report),
                Ok(Err(error)) => tracing::warn!(%error, "drift check failed"),
                Err(_) => return,
            }
        }
    });
}

/// Loads the active version, or on an empty data dir imports the demo data and serves the
/// shipped first version (or one trained on the demo data).
fn spawn_model_startup(state: Arc<AppState>) {
    tokio::task::spawn_blocking(move || {
        state.set_readiness(ModelStartup::Starting("loading the model".into()));
        let mut observer = StartupObserver {
            state: &state,
            last_logged: -10.0,
        };
        let outcome = state.engine.restore_or_bootstrap(
            crate::demo::images,
            crate::demo::first_version(),
            &mut observer,
        );
        sprig_core::memory::release_freed_memory();
        if matches!(outcome, Ok(StartupModel::Restored(_))) {
            match state.engine.resume_rollout() {
                Ok(Some(id)) => tracing::info!(rollout = id, "the running rollout resumes"),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "resuming the running rollout failed; the next sync retries")
                }
            }
        }
        match outcome {
            Ok(StartupModel::Restored(version)) => ready(&state, &format!("serving model version {version}")),
            Ok(StartupModel::Bootstrapped { version, demo_images, shipped }) => ready(
                &state,
                &if shipped {
                    format!("imported {demo_images} demo images and the shipped version {version}, trained on 900 bean photos (first start); serving it")
                } else {
                    format!("trained version {version} on {demo_images} demo images (first start); serving it")
                },
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
