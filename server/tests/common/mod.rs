//! Test harness: runs the real `sprig` binary on 127.0.0.1:0 with a temp data dir and talks
//! to it over real HTTP.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod deployment;
pub mod raw;
pub mod replicas;
pub mod retrain;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Reports a test (or a part of one) that cannot run here: one line on stderr, which shows even
/// though the harness captures output, and the same as one line `<binary>::<test>: <reason>`
/// appended to the file `SPRIG_SKIP_LOG` names, when set (scripts/test.sh lists them at the end).
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let line = format!("{}::{test}: {reason}", env!("CARGO_CRATE_NAME"));
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {line}");
    if let Some(path) = std::env::var_os("SPRIG_SKIP_LOG") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("SPRIG_SKIP_LOG {}: {e}", Path::new(&path).display()));
        // One write per line, so that tests skipping at once do not interleave.
        file.write_all(format!("{}\n", line.replace('\n', " ")).as_bytes())
            .unwrap();
    }
}

/// A held-out demo image (not in the bootstrap training set).
pub fn test_image(class: &str, name: &str) -> Vec<u8> {
    std::fs::read(repo().join("data/beans-sample/test").join(class).join(name)).unwrap()
}

/// Every held-out demo image as (class, file name, bytes).
pub fn held_out_images() -> Vec<(String, String, Vec<u8>)> {
    let mut images = Vec::new();
    for class in ["angular_leaf_spot", "bean_rust", "healthy"] {
        let dir = repo().join("data/beans-sample/test").join(class);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let name = name.to_string_lossy().into_owned();
            images.push((
                class.to_string(),
                name.clone(),
                std::fs::read(dir.join(&name)).unwrap(),
            ));
        }
    }
    images
}

pub struct Sprig {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub client: reqwest::Client,
}

/// How to start a server.
#[derive(Default, Clone)]
pub struct Options {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// Start from a copy of a data dir that already holds the bootstrapped version 1.
    pub bootstrapped: bool,
    /// Reuse this data dir instead of a fresh temp dir.
    pub data_dir: Option<PathBuf>,
    /// Wait for /readyz (default) or only for the listening line.
    pub no_wait_ready: bool,
    /// Extra arguments after `serve` (e.g. `--insecure-no-auth`).
    pub serve_args: Vec<String>,
    /// Listen address (default 127.0.0.1:0).
    pub addr: Option<String>,
    /// Write the server's stderr (its log) to this file instead of the test's stderr.
    pub log_file: Option<PathBuf>,
}

impl Options {
    pub fn bootstrapped() -> Self {
        Self {
            bootstrapped: true,
            ..Self::default()
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A data dir holding the bootstrapped demo model, made once per test binary.
fn template_data_dir() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let server = Sprig::start_with(Options {
            data_dir: Some(dir.clone()),
            ..Options::default()
        });
        server.stop();
        dir
    })
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl Sprig {
    /// A fresh server with the demo model ready.
    pub fn start() -> Self {
        Self::start_with(Options::bootstrapped())
    }

    pub fn start_with(options: Options) -> Self {
        let (data_dir, temp) = match options.data_dir.clone() {
            Some(dir) => (dir, None),
            None => {
                let temp = tempfile::tempdir().unwrap();
                let dir = temp.path().join("data");
                if options.bootstrapped {
                    copy_dir(template_data_dir(), &dir);
                }
                (dir, Some(temp))
            }
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_sprig"));
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&options.args)
            .arg("serve")
            .arg("--addr")
            .arg(options.addr.as_deref().unwrap_or("127.0.0.1:0"))
            .args(&options.serve_args)
            .env("SPRIG_LOG__LEVEL", "warn")
            // Deterministic backend for assertions; tests that want another one set it.
            .env("SPRIG_BACKEND", "flex")
            // Tests fetch no runtime unless they mean to (tests/runtimes.rs).
            .env("SPRIG_RUNTIMES__FETCH", "never")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(match &options.log_file {
                Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::inherit(),
            });
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start sprig");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("sprig listening on ") {
                    let _ = sender.send(url.trim().to_string());
                }
            }
        });
        let url = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("sprig printed its URL");
        let server = Sprig {
            child: Some(child),
            url,
            data_dir,
            _temp: temp,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        };
        if !options.no_wait_ready {
            server.wait_ready(Duration::from_secs(180));
        }
        server
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.status_of("/readyz") == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sprig did not become ready in {timeout:?}: {}",
                self.raw_get("/readyz").unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A plain HTTP/1.0 GET sent on a fresh connection, whose answer is left to read.
    fn send_get(&self, path: &str) -> Option<std::net::TcpStream> {
        use std::io::Write;
        let address = self.address();
        let mut stream = std::net::TcpStream::connect(&address).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
        Some(stream)
    }

    /// The whole answer (head and body) to a plain GET, without an async runtime.
    pub fn raw_get(&self, path: &str) -> Option<String> {
        use std::io::Read;
        let mut stream = self.send_get(path)?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// `host:port` of the server.
    pub fn address(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// The status of a plain GET, without an async runtime (usable from any context).
    pub fn status_of(&self, path: &str) -> Option<u16> {
        use std::io::Read;
        let mut stream = self.send_get(path)?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The body of a plain GET as text (e.g. `/metrics`).
    pub async fn text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Any method, with an optional JSON body; returns status and body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls `path` (every 250 ms, at most 60 s) until it answers 200 with a body `done` accepts.
    pub async fn wait_for(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.get(path).await;
            if status == 200 && done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{path} never got there: {body}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Imports version 1's bundle as a new version: the same weights, so the two agree everywhere.
    pub async fn import_copy_of_version_1(&self) {
        let bundle = self
            .client
            .get(self.url("/api/models/1/bundle"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let response = self
            .client
            .post(self.url("/api/models/import"))
            .header("content-type", "application/octet-stream")
            .body(bundle)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    pub async fn predict(&self, name: &str, bytes: Vec<u8>) -> (u16, Value) {
        self.predict_via(&self.client, name, bytes).await
    }

    /// `predict` with another client (e.g. one that speaks HTTP/2).
    pub async fn predict_via(
        &self,
        client: &reqwest::Client,
        name: &str,
        bytes: Vec<u8>,
    ) -> (u16, Value) {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
        let response = client
            .post(self.url("/api/predict"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Uploads files to `class`; returns status and body.
    pub async fn upload(&self, class: &str, files: Vec<(String, Vec<u8>)>) -> (u16, Value) {
        let mut form = reqwest::multipart::Form::new().text("class", class.to_string());
        for (name, bytes) in files {
            form = form.part(
                "files",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
            );
        }
        let response = self
            .client
            .post(self.url("/api/images"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls a job until it reaches a final state.
    pub async fn wait_job(&self, id: u64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, job) = self.get(&format!("/api/jobs/{id}")).await;
            assert_eq!(status, 200, "{job}");
            if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap()) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        wait_exit(&mut child, Duration::from_secs(60))
    }

    /// SIGKILL (a crash).
    pub fn kill9(mut self) -> PathBuf {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.data_dir.clone()
    }

    /// Keeps the temp dir alive past this server (for restarts on the same data dir).
    pub fn take_temp(&mut self) -> Option<tempfile::TempDir> {
        self._temp.take()
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "sprig did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Sprig {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
