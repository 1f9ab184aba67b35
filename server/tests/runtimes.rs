//! The graph runtimes through the real binary: with `runtimes.fetch = "never"` nothing is
//! fetched and the server says why it runs on flex; the real fetch from the package registry
//! (skipped with a visible message when it cannot be reached, except in CI) installs runtimes
//! that are then selected with no `*_DYLIB_PATH` variable set; a corrupted cached library is
//! refused and, with `fetch = "auto"`, fetched again.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{Options, Sprig};
use serde_json::Value;
use sprig_backends::runtimes::{cache, pins, Discovery, Runtime};

/// A proxy that answers nothing but counts who connects to it.
fn proxy_trap() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, connections)
}

/// A server on `auto` that sees only `cache` (no `*_DYLIB_PATH`), logging at info to `log`.
fn isolated(cache: &Path, fetch: &str, log: &Path) -> Options {
    Options {
        log_file: Some(log.to_path_buf()),
        ..Options::bootstrapped()
    }
    .env("SPRIG_BACKEND", "auto")
    .env("SPRIG_LOG__LEVEL", "info")
    .env("SPRIG_RUNTIMES__FETCH", fetch)
    .env("SPRIG_RUNTIMES__CACHE_DIR", cache.to_str().unwrap())
    .env("ORT_DYLIB_PATH", "")
    .env("OPENVINO_DYLIB_PATH", "")
}

/// Whether a runtime is installed outside sprig's cache (the Python environment, system
/// paths), which `auto` would then use.
fn installed_elsewhere() -> bool {
    let discovery = Discovery {
        variables: Vec::new(),
        ..Discovery::from_environment(PathBuf::from("/nonexistent"))
    };
    Runtime::ALL.iter().any(|r| discovery.locate(*r).is_ok())
}

#[tokio::test]
async fn fetch_never_connects_nowhere_and_says_why_it_runs_on_flex() {
    let temp = tempfile::tempdir().unwrap();
    let log = temp.path().join("sprig.log");
    let (proxy, connections) = proxy_trap();
    let mut options = isolated(&temp.path().join("cache"), "never", &log);
    for variable in [
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
    ] {
        options = options.env(variable, &proxy);
    }
    let server = Sprig::start_with(options);
    let backend = server.get("/api/config").await.1["backend"].clone();
    server.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a connection was made:\n{log}"
    );
    // Written to a file, the log carries no colour codes.
    assert!(!log.contains("\x1b["), "ANSI codes in a log file:\n{log}");
    if installed_elsewhere() {
        eprintln!("flex fallback not checked: a runtime is installed outside sprig's cache");
        return;
    }
    assert_eq!(backend, "flex", "{log}");
    assert!(
        log.contains("runtimes.fetch = \"never\", so it is not fetched"),
        "{log}"
    );
    assert!(log.contains("sprig runtimes fetch"), "{log}");

    // The offline commands open the engine the same way (`models list` is the cheapest of them;
    // `sprig train` shares its `open_engine`): they say why they run on flex, not silently.
    let data = temp.path().join("data");
    let listed = Command::new(env!("CARGO_BIN_EXE_sprig"))
        .args(["--backend", "auto", "--data-dir", data.to_str().unwrap()])
        .args(["models", "list"])
        .env("SPRIG_RUNTIMES__FETCH", "never")
        .env("SPRIG_RUNTIMES__CACHE_DIR", temp.path().join("cache"))
        .env("ORT_DYLIB_PATH", "")
        .env("OPENVINO_DYLIB_PATH", "")
        .env("HTTPS_PROXY", &proxy)
        .output()
        .unwrap();
    let out = text(&listed);
    assert!(listed.status.success(), "{out}");
    assert!(
        out.contains("runtimes.fetch = \"never\", so it is not fetched"),
        "{out}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "{out}");
}

/// Starts an isolated server (see [`isolated`]) with `fetch`, logging to `name` in `dir`: the
/// backend it chose and its log.
async fn start_and_read(cache: &Path, fetch: &str, dir: &Path, name: &str) -> (Value, String) {
    let log = dir.join(name);
    let server = Sprig::start_with(isolated(cache, fetch, &log));
    let backend = server.get("/api/config").await.1["backend"].clone();
    server.stop();
    (backend, std::fs::read_to_string(&log).unwrap())
}

fn assert_graph_runtime(backend: &Value, log: &str) {
    assert!(
        backend == "openvino" || backend == "onnxruntime",
        "served on {backend}, not a graph runtime:\n{log}"
    );
}

fn sprig(cache: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sprig"))
        .args(args)
        .env("SPRIG_RUNTIMES__CACHE_DIR", cache)
        .env("ORT_DYLIB_PATH", "")
        .env("OPENVINO_DYLIB_PATH", "")
        .output()
        .unwrap()
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn fetched_runtimes_are_selected_and_a_corrupted_one_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let cache = temp.path().join("cache");
    let fetched = sprig(&cache, &["runtimes", "fetch"]);
    if !fetched.status.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI reaches the package registry, so the fetch must work:\n{}",
            text(&fetched)
        );
        common::skip(
            "fetched_runtimes_are_selected_and_a_corrupted_one_is_refused",
            &format!(
                "real runtime fetch: the package registry cannot be reached here:\n{}",
                text(&fetched)
            ),
        );
        return;
    }
    let listing = text(&sprig(&cache, &["runtimes"]));
    assert!(listing.contains("usable, version"), "{listing}");
    assert!(listing.contains("from sprig's cache"), "{listing}");

    // No variable names a library: `auto` finds the fetched ones (fetch = never: nothing new).
    let (backend, log) = start_and_read(&cache, "never", temp.path(), "first.log").await;
    assert_graph_runtime(&backend, &log);
    assert!(log.contains("from sprig's cache"), "{log}");

    // Corrupt every cached library: refused, listed as such, and `never` falls back to flex.
    for runtime in Runtime::ALL {
        let pin = pins::pin_here(runtime).unwrap();
        let library = cache::install_dir(&cache, pin).join(pin.library);
        let mut bytes = std::fs::read(&library).unwrap();
        bytes[4096] ^= 0xff;
        std::fs::write(&library, bytes).unwrap();
    }
    let listing = text(&sprig(&cache, &["runtimes"]));
    assert!(listing.contains("corrupted"), "{listing}");
    let (backend, log) = start_and_read(&cache, "never", temp.path(), "corrupted.log").await;
    if !installed_elsewhere() {
        assert_eq!(backend, "flex", "{log}");
    }
    assert!(log.contains("corrupted"), "{log}");

    // With `auto`, the start fetches a good copy again and serves through it.
    let (backend, log) = start_and_read(&cache, "auto", temp.path(), "refetched.log").await;
    assert_graph_runtime(&backend, &log);
    assert!(log.contains("fetched"), "{log}");
}
