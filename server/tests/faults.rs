//! Faults an unlucky operator meets, against the real binary: a full disk (a real, small tmpfs
//! mounted by the test; skipped with a message where mounting is not permitted), damaged database
//! files (truncated, overwritten), and a data dir held by another process. Wanted: a 2xx write is
//! on disk, predictions are still answered when only their history write fails, readiness tells,
//! writes resume when space returns, shutdown is bounded, and damage is an error that names the
//! way out — never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{copy_dir, test_image, Options, Sprig};

fn sprig(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sprig"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("SPRIG_BACKEND", "flex")
        .env("SPRIG_LOG__LEVEL", "warn")
        .output()
        .unwrap()
}

/// A stopped copy of a bootstrapped data dir (the model trained on the demo images), with one
/// upload as its last write.
fn stopped_data_dir() -> (tempfile::TempDir, PathBuf) {
    let mut server = Sprig::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = runtime.block_on(server.upload(
        "healthy",
        vec![(
            "last.jpg".into(),
            test_image("angular_leaf_spot", "test-angular_leaf_spot_0003.jpg"),
        )],
    ));
    assert_eq!((status, body["stored"].as_u64()), (200, Some(1)), "{body}");
    let temp = server.take_temp().unwrap();
    let dir = server.data_dir.clone();
    assert!(server.stop().success());
    (temp, dir)
}

/// sled's log and pages (large values live beside it in `blobs/`).
fn database_file(data_dir: &Path) -> PathBuf {
    data_dir.join("db/db")
}

fn assert_damage_reported(output: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(
        output.status.code(),
        Some(101),
        "{what}: sprig panicked: {stderr}"
    );
    assert!(!output.status.success(), "{what}: sprig accepted it");
    assert!(
        stderr.contains("damaged") && (stderr.contains(" check") || stderr.contains(" export")),
        "{what}: the error does not name the problem and the way out: {stderr}"
    );
}

#[test]
fn damaged_database_files_are_reported_not_panicked_on() {
    let (_temp, dir) = stopped_data_dir();
    assert!(sprig(&dir, &["check"]).status.success());

    // Truncated to half.
    let truncated = dir.with_file_name("truncated");
    copy_dir(&dir, &truncated);
    let file = database_file(&truncated);
    let length = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(length / 2)
        .unwrap();
    for command in [&["check"][..], &["models", "list"]] {
        assert_damage_reported(&sprig(&truncated, command), "truncated");
    }

    // 4 KiB of random bytes, at every 128 KiB of the log. sled's file holds stale segments
    // (damage there is harmless: `check` must then find every record) and live ones (sled rolls
    // back to before the damage, silently dropping acknowledged writes, or panics): either way
    // sprig must never panic, and never start on less than it acknowledged without saying so.
    let images = |output: &Output| -> Option<u64> {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find(|l| l.starts_with("images "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
    };
    let intact = images(&sprig(&dir, &["check"])).unwrap();
    let length = std::fs::metadata(database_file(&dir)).unwrap().len() as usize;
    let mut reported = 0;
    for (n, start) in (0..length.saturating_sub(4096))
        .step_by(128 * 1024)
        .enumerate()
    {
        let damaged = dir.with_file_name(format!("overwritten-{n}"));
        copy_dir(&dir, &damaged);
        let file = database_file(&damaged);
        let mut bytes = std::fs::read(&file).unwrap();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64 + n as u64;
        for byte in &mut bytes[start..start + 4096] {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *byte = seed as u8;
        }
        std::fs::write(&file, bytes).unwrap();
        let output = sprig(&damaged, &["check"]);
        if output.status.success() {
            assert_eq!(
                images(&output),
                Some(intact),
                "damage at {start} lost images silently"
            );
        } else {
            assert_damage_reported(&output, &format!("4 KiB overwritten at {start}"));
            reported += 1;
        }
        std::fs::remove_dir_all(&damaged).unwrap();
    }
    assert!(
        reported > 0,
        "no damage position was reported: the test did not reach live data"
    );
}

#[test]
fn a_held_data_dir_is_reported_as_held() {
    let server = Sprig::start();
    let output = sprig(&server.data_dir, &["check"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("another sprig process is using") && !stderr.contains("damaged"),
        "{stderr}"
    );
}

/// A second `sprig serve` on the data dir a running server holds: it fails at once, before it
/// listens, says why, and the first one serves on, reads and writes.
#[tokio::test]
async fn a_second_server_on_a_held_data_dir_fails_fast_and_the_first_serves_on() {
    let server = Sprig::start();
    let started = Instant::now();
    let mut second = Command::new(env!("CARGO_BIN_EXE_sprig"))
        .arg("--data-dir")
        .arg(&server.data_dir)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("SPRIG_BACKEND", "flex")
        .env("SPRIG_LOG__LEVEL", "warn")
        .env("SPRIG_RUNTIMES__FETCH", "never")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while second.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second server on the same data dir still runs after 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let output = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("measured: the second server exited after {took:?}");
    assert!(!output.status.success(), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "it panicked: {stderr}");
    assert!(
        stderr.contains(&format!(
            "another sprig process is using {}",
            server.data_dir.display()
        )),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening"),
        "it listened first"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");

    assert_eq!(server.status_of("/readyz"), Some(200));
    let (status, prediction) = server
        .predict("leaf.jpg", test_image("healthy", "test-healthy_0007.jpg"))
        .await;
    assert_eq!(status, 200, "{prediction}");
    let (status, body) = server
        .upload(
            "healthy",
            vec![(
                "after.jpg".into(),
                test_image("bean_rust", "test-bean_rust_0019.jpg"),
            )],
        )
        .await;
    assert_eq!((status, body["stored"].as_u64()), (200, Some(1)), "{body}");
    assert!(server.stop().success());
}

#[test]
fn export_writes_a_tree_that_import_restores() {
    let (_temp, dir) = stopped_data_dir();
    let out = dir.with_file_name("export");
    let output = sprig(&dir, &["export", out.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let restored = dir.with_file_name("restored");
    let output = sprig(&restored, &["import", out.join("images").to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let count = |dir: &Path| {
        let output = sprig(dir, &["check"]);
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        text.lines()
            .find(|l| l.starts_with("images "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap()
    };
    assert!(count(&dir) > 0);
    assert_eq!(count(&restored), count(&dir));
}

/// A tmpfs of `mib` MiB, unmounted on drop; `None` where this process may not mount.
struct SmallDisk {
    path: PathBuf,
    _temp: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u64) -> Option<Self> {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&path)
            .status()
            .ok()?;
        status.success().then_some(Self { path, _temp: temp })
    }

    /// Fills the disk until `leave_mib` MiB are free.
    fn fill(&self, leave_mib: u64) -> PathBuf {
        let filler = self.path.join("filler");
        let free = free_mib(&self.path);
        let size = free.saturating_sub(leave_mib) * 1024 * 1024;
        match std::fs::write(&filler, vec![0u8; size as usize]) {
            // Asked to fill it all: running out is the point.
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull && leave_mib == 0 => {}
            other => other.unwrap(),
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn free_mib(path: &Path) -> u64 {
    let output = Command::new("df")
        .args(["-B1M", "--output=avail"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_full_disk_refuses_writes_keeps_answering_and_recovers() {
    let Some(disk) = SmallDisk::mount(160) else {
        common::skip(
            "a_full_disk_refuses_writes_keeps_answering_and_recovers",
            "cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)",
        );
        return;
    };
    let (_temp, template) = stopped_data_dir();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(full_disk(disk, template));
}

async fn full_disk(disk: SmallDisk, template: PathBuf) {
    let data_dir = disk.path.join("data");
    copy_dir(&template, &data_dir);
    let reserve = "32";
    let options = Options {
        data_dir: Some(data_dir.clone()),
        ..Options::default().env("SPRIG_SERVER__MIN_FREE_MIB", reserve)
    };
    let server = Sprig::start_with(options.clone());

    // A stored upload is on disk at once: it survives a kill -9 right after the answer.
    let (status, body) = server
        .upload(
            "healthy",
            vec![(
                "durable.jpg".into(),
                test_image("healthy", "test-healthy_0030.jpg"),
            )],
        )
        .await;
    assert_eq!((status, body["stored"].as_u64()), (200, Some(1)), "{body}");
    server.kill9();
    let server = Sprig::start_with(options.clone());
    let (_, images) = server.get("/api/images?per_page=500").await;
    assert!(images["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["filename"] == "durable.jpg"));

    // Fill the disk to below the reserve.
    let filler = disk.fill(16);
    let (status, body) = server
        .upload(
            "healthy",
            vec![(
                "full.jpg".into(),
                test_image("healthy", "test-healthy_0007.jpg"),
            )],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["status"], "rejected", "{body}");
    assert_eq!(body["items"][0]["error"]["code"], "insufficient_storage");
    // Predictions are answered, unrecorded and counted.
    let (status, prediction) = server
        .predict("p.jpg", test_image("bean_rust", "test-bean_rust_0019.jpg"))
        .await;
    assert_eq!(status, 200, "{prediction}");
    assert_eq!(prediction["prediction_id"], 0, "{prediction}");
    let metrics = server.text("/metrics").await;
    assert!(
        metrics.contains("sprig_predictions_unrecorded_total 1"),
        "{metrics}"
    );
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["error"]["code"], "insufficient_storage");

    // Space returns: writes resume without a restart.
    std::fs::remove_file(filler).unwrap();
    let (status, _) = server.get("/readyz").await;
    assert_eq!(status, 200);
    let (status, body) = server
        .upload(
            "healthy",
            vec![(
                "after.jpg".into(),
                test_image("healthy", "test-healthy_0007.jpg"),
            )],
        )
        .await;
    assert_eq!((status, body["stored"].as_u64()), (200, Some(1)), "{body}");
    let (_, prediction) = server
        .predict("p.jpg", test_image("bean_rust", "test-bean_rust_0019.jpg"))
        .await;
    assert!(
        prediction["prediction_id"].as_u64().is_some(),
        "{prediction}"
    );

    // Full to the last byte: even the flush after a write fails. The client gets a code and a
    // plain message; the operating system's text ("No space left on device (os error 28)") stays
    // in the log.
    let _filler = disk.fill(0);
    let _top_up = std::fs::write(disk.path.join("top-up"), vec![0u8; 1 << 20]);
    let response = server
        .client
        .patch(server.url("/api/images/1"))
        .json(&serde_json::json!({"class": "bean_rust"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(status >= 500, "{status} {text}");
    assert!(
        !text.contains("os error") && !text.contains("No space"),
        "{text}"
    );

    // Full at shutdown: it still completes, promptly.
    let started = Instant::now();
    let status = server.stop();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(status.code(), Some(101));
}
