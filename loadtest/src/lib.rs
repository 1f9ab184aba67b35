//! sprig's load tests, built on goose (the Locust-style Rust framework). Users mix the calls a
//! real deployment sees — predictions most, then batch predictions, monitoring, statistics,
//! dataset listing and occasional uploads — in the original project's four scenarios.
//! The program starts nothing: it loads a running sprig, loopback only unless told otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use goose::config::GooseConfiguration;
use goose::prelude::*;
use serde::{Deserialize, Serialize};

/// The original project's load scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Load {
    /// 10 users, spawn 2/s, 2 min.
    Light,
    /// 50 users, spawn 5/s, 5 min.
    Normal,
    /// 100 users, spawn 10/s, 5 min.
    Heavy,
    /// 200 users, spawn 20/s, 3 min.
    Peak,
}

impl Load {
    /// (users, spawned per second, default duration).
    pub fn shape(self) -> (usize, usize, Duration) {
        match self {
            Load::Light => (10, 2, Duration::from_secs(120)),
            Load::Normal => (50, 5, Duration::from_secs(300)),
            Load::Heavy => (100, 10, Duration::from_secs(300)),
            Load::Peak => (200, 20, Duration::from_secs(180)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Load::Light => "light",
            Load::Normal => "normal",
            Load::Heavy => "heavy",
            Load::Peak => "peak",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadTestError {
    #[error("refusing to load {0}: only loopback targets are allowed without --allow-remote")]
    RemoteTarget(String),
    #[error("no images found in {0} (expected image files, possibly in class subdirectories)")]
    NoImages(PathBuf),
    #[error("reading {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("goose: {0}")]
    Goose(String),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Base URL of a running sprig, e.g. `http://127.0.0.1:8080`.
    pub host: String,
    pub load: Load,
    /// Overrides the scenario's duration.
    pub duration: Option<Duration>,
    /// Images the users send (a directory, searched one level deep).
    pub images: PathBuf,
    /// `Authorization: Bearer` token for the upload requests, when the server needs one.
    pub token: Option<String>,
    pub allow_remote: bool,
    /// Also write goose's HTML report here.
    pub html_report: Option<PathBuf>,
    /// Sample this process's resident memory every second during the run (Linux /proc).
    pub server_pid: Option<u32>,
}

/// Per-request-kind results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestSummary {
    pub requests: usize,
    pub failures: usize,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub status_codes: BTreeMap<u16, usize>,
}

/// Results of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub load: Load,
    pub users: usize,
    pub duration_s: f64,
    pub total: RequestSummary,
    pub by_request: BTreeMap<String, RequestSummary>,
    /// `(seconds since start, resident MiB)` of the server, when its pid was given.
    #[serde(default)]
    pub server_rss_mib: Vec<(f64, f64)>,
}

/// Resident memory of a process in MiB, from /proc.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// True for `http://127.x.x.x`, `http://localhost` and `http://[::1]` targets.
pub fn is_loopback(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or("");
    let host = rest.split('/').next().unwrap_or("");
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An image file's name and bytes.
type NamedImage = (String, Vec<u8>);

struct Shared {
    images: Vec<NamedImage>,
    token: Option<String>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED
        .get()
        .expect("images loaded before the attack starts")
}

fn load_images(dir: &Path) -> Result<Vec<NamedImage>, LoadTestError> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LoadTestError::Io(dir.to_path_buf(), e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Ok(inner) = std::fs::read_dir(&path) {
                files.extend(inner.flatten().map(|e| e.path()).filter(|p| p.is_file()));
            }
        } else if path.is_file() {
            files.push(path);
        }
    }
    files.retain(|p| {
        p.extension().is_some_and(|e| {
            ["jpg", "jpeg", "png"].contains(&e.to_string_lossy().to_lowercase().as_str())
        })
    });
    files.sort();
    let images = files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).map_err(|e| LoadTestError::Io(p.clone(), e))?;
            Ok((
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                bytes,
            ))
        })
        .collect::<Result<Vec<_>, LoadTestError>>()?;
    if images.is_empty() {
        return Err(LoadTestError::NoImages(dir.to_path_buf()));
    }
    Ok(images)
}

/// A different image for each call, spread over users.
fn next_image() -> &'static NamedImage {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let images = &shared().images;
    &images[NEXT.fetch_add(1, Ordering::Relaxed) % images.len()]
}

fn part(name: &str, bytes: &[u8]) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string())
}

/// One finished request: latency, and the status (0 when no answer arrived).
#[derive(Clone, Copy)]
struct Sample {
    micros: u64,
    status: u16,
    ok: bool,
}

static SAMPLES: std::sync::Mutex<BTreeMap<&'static str, Vec<Sample>>> =
    std::sync::Mutex::new(BTreeMap::new());

fn record(name: &'static str, sample: Sample) {
    SAMPLES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(name)
        .or_default()
        .push(sample);
}

/// Sends a request through goose (its own metrics and report) and records it here too.
async fn send(
    user: &mut GooseUser,
    name: &'static str,
    method: GooseMethod,
    path: &str,
    builder: Option<reqwest::RequestBuilder>,
) -> TransactionResult {
    let mut request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .expect_status_code(200);
    if let Some(builder) = builder {
        request = request.set_request_builder(builder);
    }
    let started = std::time::Instant::now();
    let result = user.request(request.build()).await;
    let micros = started.elapsed().as_micros() as u64;
    match &result {
        Ok(response) => record(
            name,
            Sample {
                micros,
                status: response.request.status_code,
                ok: response.request.success,
            },
        ),
        Err(error) => {
            let status = match error.as_ref() {
                goose::goose::TransactionError::RequestFailed { raw_request } => {
                    raw_request.status_code
                }
                _ => 0,
            };
            record(
                name,
                Sample {
                    micros,
                    status,
                    ok: false,
                },
            );
        }
    }
    result.map(|_| ())
}

async fn predict(user: &mut GooseUser) -> TransactionResult {
    let (name, bytes) = next_image();
    let form = reqwest::multipart::Form::new().part("file", part(name, bytes));
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/predict")?
        .multipart(form);
    send(
        user,
        "predict",
        GooseMethod::Post,
        "/api/predict",
        Some(builder),
    )
    .await
}

async fn predict_batch(user: &mut GooseUser) -> TransactionResult {
    let mut form = reqwest::multipart::Form::new();
    for _ in 0..4 {
        let (name, bytes) = next_image();
        form = form.part("files", part(name, bytes));
    }
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/api/predict/batch")?
        .multipart(form);
    send(
        user,
        "predict_batch",
        GooseMethod::Post,
        "/api/predict/batch",
        Some(builder),
    )
    .await
}

async fn metrics(user: &mut GooseUser) -> TransactionResult {
    send(user, "metrics", GooseMethod::Get, "/api/metrics", None).await
}

async fn prediction_stats(user: &mut GooseUser) -> TransactionResult {
    send(
        user,
        "prediction_stats",
        GooseMethod::Get,
        "/api/stats/predictions",
        None,
    )
    .await
}

async fn dataset_stats(user: &mut GooseUser) -> TransactionResult {
    send(
        user,
        "dataset_stats",
        GooseMethod::Get,
        "/api/dataset/stats",
        None,
    )
    .await
}

async fn list_images(user: &mut GooseUser) -> TransactionResult {
    send(
        user,
        "list_images",
        GooseMethod::Get,
        "/api/images?per_page=50",
        None,
    )
    .await
}

/// Uploads one of the known images to a load-test class: after the first round these are
/// duplicates, so the data set does not grow with the test's length.
async fn upload(user: &mut GooseUser) -> TransactionResult {
    let (name, bytes) = next_image();
    let form = reqwest::multipart::Form::new()
        .text("class", "loadtest")
        .part("files", part(name, bytes));
    let mut builder = user
        .get_request_builder(&GooseMethod::Post, "/api/images")?
        .multipart(form);
    if let Some(token) = &shared().token {
        builder = builder.bearer_auth(token);
    }
    send(
        user,
        "upload",
        GooseMethod::Post,
        "/api/images",
        Some(builder),
    )
    .await
}

/// The request mix: (transaction, weight).
fn scenario() -> Result<Scenario, GooseError> {
    Ok(scenario!("sprig_user")
        .set_wait_time(Duration::from_millis(100), Duration::from_millis(1000))?
        .register_transaction(transaction!(predict).set_weight(20)?)
        .register_transaction(transaction!(predict_batch).set_weight(3)?)
        .register_transaction(transaction!(metrics).set_weight(3)?)
        .register_transaction(transaction!(prediction_stats).set_weight(2)?)
        .register_transaction(transaction!(dataset_stats).set_weight(2)?)
        .register_transaction(transaction!(list_images).set_weight(2)?)
        .register_transaction(transaction!(upload).set_weight(1)?))
}

fn summarize(samples: &[Sample], seconds: f64) -> RequestSummary {
    let mut latencies: Vec<u64> = samples.iter().map(|s| s.micros).collect();
    latencies.sort_unstable();
    let quantile = |q: f64| -> f64 {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q).round() as usize)
            .map_or(0.0, |&us| us as f64 / 1000.0)
    };
    let mut status_codes = BTreeMap::new();
    for sample in samples {
        *status_codes.entry(sample.status).or_insert(0) += 1;
    }
    RequestSummary {
        requests: samples.len(),
        failures: samples.iter().filter(|s| !s.ok).count(),
        requests_per_second: samples.len() as f64 / seconds.max(1e-9),
        p50_ms: quantile(0.50),
        p95_ms: quantile(0.95),
        p99_ms: quantile(0.99),
        max_ms: latencies.last().map_or(0.0, |&us| us as f64 / 1000.0),
        status_codes,
    }
}

/// Runs the plan against a running sprig and summarises the results.
pub async fn run(plan: &Plan) -> Result<Summary, LoadTestError> {
    if !plan.allow_remote && !is_loopback(&plan.host) {
        return Err(LoadTestError::RemoteTarget(plan.host.clone()));
    }
    let images = load_images(&plan.images)?;
    let _ = SHARED.set(Shared {
        images,
        token: plan.token.clone(),
    });
    let (users, rate, default_duration) = plan.load.shape();
    let duration = plan.duration.unwrap_or(default_duration);
    let mut config = GooseConfiguration::default();
    config.host = Some(plan.host.clone());
    config.users = Some(users);
    config.increase_rate = Some(rate.to_string());
    config.run_time = Some(duration.as_secs().to_string());
    config.quiet = 1;
    config.no_print_metrics = true;
    if let Some(report) = &plan.html_report {
        config.report_file = vec![report.display().to_string()];
    }
    let goose = |e: GooseError| LoadTestError::Goose(e.to_string());
    let rss = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = plan.server_pid.map(|pid| {
        let rss = rss.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            while let Some(mib) = rss_mib(pid) {
                rss.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((started.elapsed().as_secs_f64(), mib));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    });
    let metrics = GooseAttack::initialize_with_config(config)
        .map_err(goose)?
        .register_scenario(scenario().map_err(goose)?)
        .execute()
        .await
        .map_err(goose)?;

    if let Some(task) = sampler {
        task.abort();
    }
    let server_rss_mib = std::mem::take(&mut *rss.lock().unwrap_or_else(|p| p.into_inner()));
    let seconds = metrics.duration as f64;
    let samples = std::mem::take(&mut *SAMPLES.lock().unwrap_or_else(|p| p.into_inner()));
    let all: Vec<Sample> = samples.values().flatten().copied().collect();
    Ok(Summary {
        load: plan.load,
        users,
        duration_s: seconds,
        total: summarize(&all, seconds),
        by_request: samples
            .iter()
            .map(|(name, s)| (name.to_string(), summarize(s, seconds)))
            .collect(),
        server_rss_mib,
    })
}

/// An HTTP ingest measurement.
#[derive(Debug, Clone)]
pub struct IngestPlan {
    pub host: String,
    /// A `DIR/<class>/<images>` tree.
    pub dir: PathBuf,
    pub files_per_request: usize,
    pub concurrency: usize,
    pub token: Option<String>,
    pub allow_remote: bool,
}

#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub files: usize,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub seconds: f64,
}

/// Uploads every image of the tree through `POST /api/images` (several files per request,
/// a few requests at a time) and times it end to end.
pub async fn ingest(plan: &IngestPlan) -> Result<IngestReport, anyhow::Error> {
    if !plan.allow_remote && !is_loopback(&plan.host) {
        return Err(LoadTestError::RemoteTarget(plan.host.clone()).into());
    }
    let mut requests: Vec<(String, Vec<NamedImage>)> = Vec::new();
    let mut classes: Vec<PathBuf> = std::fs::read_dir(&plan.dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    for class_dir in classes {
        let class = class_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let images = load_images(&class_dir)?;
        for chunk in images.chunks(plan.files_per_request.max(1)) {
            requests.push((class.clone(), chunk.to_vec()));
        }
    }
    let files = requests.iter().map(|(_, f)| f.len()).sum();
    let client = reqwest::Client::new();
    let url = format!("{}/api/images", plan.host.trim_end_matches('/'));
    let started = std::time::Instant::now();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(requests));
    let mut workers = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let (queue, client, url, token) = (
            queue.clone(),
            client.clone(),
            url.clone(),
            plan.token.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut counts = (0u64, 0u64, 0u64);
            loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let Some((class, images)) = next else {
                    return Ok::<_, anyhow::Error>(counts);
                };
                let mut form = reqwest::multipart::Form::new().text("class", class);
                for (name, bytes) in images {
                    form = form.part("files", part(&name, &bytes));
                }
                let mut request = client.post(&url).multipart(form);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await?.error_for_status()?;
                let body: serde_json::Value = response.json().await?;
                counts.0 += body["stored"].as_u64().unwrap_or(0);
                counts.1 += body["duplicates"].as_u64().unwrap_or(0);
                counts.2 += body["rejected"].as_u64().unwrap_or(0);
            }
        }));
    }
    let mut report = IngestReport {
        files,
        ..IngestReport::default()
    };
    for worker in workers {
        let (stored, duplicates, rejected) = worker.await??;
        report.stored += stored;
        report.duplicates += duplicates;
        report.rejected += rejected;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_by_default() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:3000/",
            "http://[::1]:8080",
            "http://127.5.6.7",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "http://localhost.evil.com",
            "ftp://127.0.0.1",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn scenarios_match_the_original_project() {
        assert_eq!(Load::Light.shape(), (10, 2, Duration::from_secs(120)));
        assert_eq!(Load::Normal.shape(), (50, 5, Duration::from_secs(300)));
        assert_eq!(Load::Heavy.shape(), (100, 10, Duration::from_secs(300)));
        assert_eq!(Load::Peak.shape(), (200, 20, Duration::from_secs(180)));
    }
}
