//! Fetching a pinned wheel: pip downloads it (so the user's pip configuration — index, proxy,
//! certificates — applies), then [`super::cache::install`] verifies and installs it. Bounded in
//! time: pip is killed at the deadline.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::runtime::Runtime;
use super::{cache, pins};

/// Fetches `runtime`'s pinned wheel for this platform into `cache_dir` within `timeout`: the
/// library's path, or why not (with what to do about it).
pub fn fetch(runtime: Runtime, cache_dir: &Path, timeout: Duration) -> Result<PathBuf, String> {
    let pin = pins::pin_here(runtime)?;
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| format!("creating the cache dir {}: {e}", cache_dir.display()))?;
    let download = cache_dir.join(format!(
        ".download-{}-{}",
        runtime.name(),
        std::process::id()
    ));
    let fetched = download_wheel(pin, &download, timeout)
        .and_then(|wheel| cache::install(&wheel, pin, cache_dir));
    let _ = std::fs::remove_dir_all(&download);
    fetched
}

fn download_wheel(pin: &pins::Pin, into: &Path, timeout: Duration) -> Result<PathBuf, String> {
    let requirement = format!("{}=={}", pin.runtime.name(), pin.runtime.version());
    let mut child = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
        ])
        .args([
            "--disable-pip-version-check",
            "--platform",
            pin.pip_platform,
        ])
        .args([
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            "--dest",
        ])
        .arg(into)
        .arg(&requirement)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run python3 ({e}), which fetches runtimes with pip: install python3 with \
                 pip, or set runtimes.fetch = \"never\" and pre-seed the cache with \
                 `sprig runtimes fetch` on a connected machine"
            )
        })?;
    // Read stderr on the side so that a chatty pip cannot block on a full pipe.
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "downloading {requirement} took longer than {}s (runtimes.fetch_timeout_secs)",
                    timeout.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for pip: {e}")),
        }
    };
    let stderr = reader.join().unwrap_or_default();
    if !status.success() {
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(format!(
            "pip could not download {requirement} ({status}: {}); check the network or pip's \
             index and proxy settings",
            last.unwrap_or("no message").trim()
        ));
    }
    let wheel = into.join(pin.wheel);
    if !wheel.is_file() {
        return Err(format!("pip did not download the pinned {}", pin.wheel));
    }
    Ok(wheel)
}
