//! Three sprig replicas on one PostgreSQL (a throwaway cluster) behind a real nginx: uploads
//! seen everywhere, one retrain at a time across replicas, a replica killed with -9 mid-retrain
//! settled by another within the lease, an activation on one served by all within 2 s while a
//! load runs with zero failed requests, and every prediction counted once.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::deployment::{nginx_or_skip, Nginx};
use common::replicas::{predict_version, replica, HEARTBEAT_SECS, LEASE_SECS};
use common::Options;
use common::{held_out_images, Sprig};
use futures::StreamExt;
use serde_json::{json, Value};
use sprig_store::pg_test_cluster::cluster_or_skip;

/// The pid in a worker name `retrain@host-pid-start`.
fn worker_pid(worker: &str) -> u32 {
    let instance = worker.split_once('@').unwrap().1;
    let mut parts = instance.rsplitn(3, '-');
    parts.next();
    parts.next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_one_postgres_behind_nginx() {
    const TEST: &str = "three_replicas_share_one_postgres_behind_nginx";
    let Some(cluster) = cluster_or_skip(&format!("replicas::{TEST}")) else {
        return;
    };
    let Some(nginx_binary) = nginx_or_skip(TEST) else {
        return;
    };
    let url = cluster.create_database();
    // A and B start together on the empty database (both may train a first version, but only
    // one is activated and served by all); C starts later and finds it.
    let starting = |options: Options| Options {
        no_wait_ready: true,
        ..options
    };
    let a = Sprig::start_with(starting(replica(&url)));
    let b = Sprig::start_with(starting(replica(&url)));
    a.wait_ready(Duration::from_secs(180));
    b.wait_ready(Duration::from_secs(180));
    let mut c = Sprig::start_with(replica(&url));
    let (_, models) = a.get("/api/models").await;
    let first = models["active_version"].clone();
    for server in [&a, &b, &c] {
        let (_, models) = server.get("/api/models").await;
        assert_eq!(models["active_version"], first, "{models}");
    }
    let (_, history) = c.get("/api/models/history").await;
    assert_eq!(
        history["items"].as_array().unwrap().len(),
        1,
        "one first activation: {history}"
    );
    let versions_before = models["items"].as_array().unwrap().len();
    let upstream = format!(
        "{}; server {}; server {}",
        a.address(),
        b.address(),
        c.address()
    );
    let nginx = Nginx::start(&nginx_binary, &upstream);
    let images = held_out_images();
    let mut predictions_made = 0u64;

    // An upload through A is on B and in C's data-set view.
    let (_, stats_before) = c.get("/api/dataset/stats").await;
    let (class, name, bytes) = &images[0];
    let (status, uploaded) = a.upload(class, vec![(name.clone(), bytes.clone())]).await;
    assert_eq!(
        (status, &uploaded["items"][0]["status"]),
        (200, &json!("stored")),
        "{uploaded}"
    );
    let id = uploaded["items"][0]["image"]["id"].as_u64().unwrap();
    let (status, seen) = b.get(&format!("/api/images/{id}")).await;
    assert_eq!(
        (status, seen["class"].as_str()),
        (200, Some(class.as_str())),
        "{seen}"
    );
    let (_, stats_after) = c.get("/api/dataset/stats").await;
    assert_eq!(
        stats_after["total_images"].as_u64().unwrap(),
        stats_before["total_images"].as_u64().unwrap() + 1
    );

    // A retrain submitted on B; a second one on C or A is 409 naming B's job.
    // Augmented views not yet cached: many seconds of backbone work, a window to kill it in.
    let (status, accepted) = b
        .post_json("/api/retrain", json!({"epochs": 200, "augment_views": 8}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let doomed = accepted["job_id"].as_u64().unwrap();
    for other in [&c, &a] {
        let (status, conflict) = other.post_json("/api/retrain", json!({})).await;
        assert_eq!(status, 409, "{conflict}");
        assert_eq!(conflict["error"]["job_id"], doomed);
    }
    // Exactly one replica claims it; find which one and kill it with -9 while it trains.
    let deadline = Instant::now() + Duration::from_secs(60);
    let worker = loop {
        // The job record names the worker (replica) that claimed it.
        let (_, job) = a.get(&format!("/api/jobs/{doomed}")).await;
        if let Some(worker) = job["worker"].as_str() {
            if job["state"] == "running" && job["progress"].as_f64().unwrap_or(0.0) > 0.0 {
                break worker.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "job {doomed} did not start: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let runner_pid = worker_pid(&worker);
    let mut servers = vec![a, b];
    let runner = if c.pid() == runner_pid {
        std::mem::replace(&mut c, Sprig::start_with(replica(&url)))
    } else {
        let index = servers
            .iter()
            .position(|s| s.pid() == runner_pid)
            .expect("the worker is one of the replicas");
        let replacement = Sprig::start_with(replica(&url));
        std::mem::replace(&mut servers[index], replacement)
    };
    let killed_at = Instant::now();
    runner.kill9();
    let [a, b]: [Sprig; 2] = servers.try_into().ok().unwrap();
    // Another replica settles it within the lease (plus a heartbeat of sweep delay).
    let job = loop {
        let (_, job) = a.get(&format!("/api/jobs/{doomed}")).await;
        if job["state"] != "running" && job["state"] != "queued" {
            break job;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(LEASE_SECS + 20),
            "not settled: {job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let settled_after = killed_at.elapsed();
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "interrupted", "{job}");
    eprintln!("job {doomed} settled {settled_after:?} after its replica was killed");
    assert!(settled_after < Duration::from_secs(LEASE_SECS + 2 * HEARTBEAT_SECS + 3));
    let (_, models) = b.get("/api/models").await;
    assert_eq!(
        models["items"].as_array().unwrap().len(),
        versions_before,
        "no version from the killed job: {models}"
    );

    // A retrain through A, followed live from C (progress pushed through the database).
    let (status, accepted) = a.post_json("/api/retrain", json!({"epochs": 8})).await;
    assert_eq!(status, 202, "{accepted}");
    let job_id = accepted["job_id"].as_u64().unwrap();
    let events = c
        .client
        .get(c.url(&format!("/api/jobs/{job_id}/events")))
        .send()
        .await
        .unwrap();
    let mut stream = events.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(300), stream.next())
        .await
        .expect("events keep coming")
    {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let updates: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert!(updates.len() >= 3, "C streamed A's job: {text}");
    assert_eq!(updates.last().unwrap()["state"], "succeeded", "{text}");
    let new_version = updates.last().unwrap()["model_version"].as_u64().unwrap();

    // Load through nginx while C activates the new version: nothing fails, and every replica
    // serves it within 2 s.
    let failures = Arc::new(AtomicU64::new(0));
    let successes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = reqwest::Client::new();
    let load: Vec<_> = (0..4)
        .map(|n| {
            let (client, failures, successes, stop) = (
                client.clone(),
                failures.clone(),
                successes.clone(),
                stop.clone(),
            );
            let target = nginx.url("/api/predict");
            let image = images[n % images.len()].2.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let form = reqwest::multipart::Form::new().part(
                        "file",
                        reqwest::multipart::Part::bytes(image.clone()).file_name("leaf.jpg"),
                    );
                    match client.post(&target).multipart(form).send().await {
                        Ok(r) if r.status() == 200 => successes.fetch_add(1, Ordering::SeqCst),
                        _ => failures.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, activated) = c
        .post_json(&format!("/api/models/{new_version}/activate"), json!({}))
        .await;
    assert_eq!(status, 200, "{activated}");
    let activated_at = Instant::now();
    let probe = &images[1].2;
    for server in [&a, &b, &c] {
        loop {
            let version = predict_version(server, probe).await;
            predictions_made += 1;
            if version == new_version {
                break;
            }
            assert!(
                activated_at.elapsed() < Duration::from_secs(2),
                "{} still serves {version} 2 s after the activation",
                server.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "every replica served version {new_version} {:?} after the activation",
        activated_at.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests failed during the activation; nginx: {}",
        nginx.error_log()
    );
    predictions_made += successes.load(Ordering::SeqCst);
    assert!(successes.load(Ordering::SeqCst) > 10);

    // Predictions through all three, counted once each, seen the same from every replica.
    for server in [&a, &b, &c] {
        predict_version(server, probe).await;
        predictions_made += 1;
    }
    for server in [&a, &b, &c] {
        let (_, stats) = server.get("/api/stats/predictions").await;
        assert_eq!(
            stats["total"].as_u64().unwrap(),
            predictions_made,
            "{stats}"
        );
    }
}

#[tokio::test]
async fn an_embedded_data_dir_moves_up_to_postgres() {
    const TEST: &str = "an_embedded_data_dir_moves_up_to_postgres";
    let Some(cluster) = cluster_or_skip(&format!("replicas::{TEST}")) else {
        return;
    };
    // An embedded server with some history: the bootstrapped version, an upload, predictions.
    let mut embedded = Sprig::start();
    let images = held_out_images();
    let (class, name, bytes) = &images[2];
    let (status, _) = embedded
        .upload(class, vec![(name.clone(), bytes.clone())])
        .await;
    assert_eq!(status, 200);
    for _ in 0..2 {
        predict_version(&embedded, bytes).await;
    }
    let (_, dataset) = embedded.get("/api/dataset/stats").await;
    let (_, models) = embedded.get("/api/models").await;
    let (_, history) = embedded.get("/api/models/history").await;
    let data_dir = embedded.data_dir.clone();
    let _keep = embedded.take_temp();
    assert!(embedded.stop().success());

    // `sprig migrate` prepares an empty database; `sprig migrate-store` fills it.
    let url = cluster.create_database();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sprig"))
            .arg("--data-dir")
            .arg(&data_dir)
            .args(args)
            .env("SPRIG_LOG__LEVEL", "warn")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let migrated = run(&["--store-url", &url, "migrate"]);
    assert!(
        migrated.contains(&format!("schema version {}", sprig_store::POSTGRES_SCHEMA)),
        "{migrated}"
    );
    let copied = run(&["migrate-store", "--to", &url]);
    assert!(copied.contains("copied and verified"), "{copied}");
    let checked = run(&["--store-url", &url, "check"]);
    assert!(
        checked.contains(&format!("schema version {}", sprig_store::POSTGRES_SCHEMA))
            && checked.contains("readable"),
        "{checked}"
    );

    // A server on PostgreSQL answers as the embedded one did.
    let moved = Sprig::start_with(Options::default().env("SPRIG_STORE__URL", &url));
    assert_eq!(
        moved.get("/api/dataset/stats").await.1["total_images"],
        dataset["total_images"]
    );
    assert_eq!(moved.get("/api/models").await.1, models);
    assert_eq!(moved.get("/api/models/history").await.1, history);
    assert_eq!(moved.get("/api/stats/predictions").await.1["total"], 2);
    assert_eq!(predict_version(&moved, bytes).await, 1);
    // A second copy into the filled database is refused.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_sprig"))
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["migrate-store", "--to", &url])
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[test]
fn two_processes_importing_the_same_images_store_each_once() {
    const TEST: &str = "two_processes_importing_the_same_images_store_each_once";
    let Some(cluster) = cluster_or_skip(&format!("replicas::{TEST}")) else {
        return;
    };
    let url = cluster.create_database();
    let tree = common::repo().join("data/beans-sample/train");
    let images: usize = std::fs::read_dir(&tree)
        .unwrap()
        .map(|class| std::fs::read_dir(class.unwrap().path()).unwrap().count())
        .sum();
    // Two `sprig import` processes on one database at once, the same 60 photos each.
    let import = || {
        let dir = tempfile::tempdir().unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_sprig"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--store-url", &url, "--backend", "flex", "import"])
            .arg(&tree)
            .env("SPRIG_LOG__LEVEL", "warn")
            .env("SPRIG_RUNTIMES__FETCH", "never")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (import(), import());
    let mut stored = 0;
    let mut duplicate = 0;
    for child in [first, second] {
        let output = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{text}");
        // The summary table: class, stored, duplicate, rejected.
        let (mut s, mut d) = (0, 0);
        for row in text.lines().skip(1) {
            let columns: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(columns.len(), 4, "{text}");
            assert_eq!(columns[3], "0", "nothing rejected: {text}");
            s += columns[1].parse::<usize>().unwrap();
            d += columns[2].parse::<usize>().unwrap();
        }
        eprintln!("one import process: {s} stored, {d} duplicate");
        stored += s;
        duplicate += d;
    }
    assert_eq!((stored, duplicate), (images, images));
    let count = cluster.sql(&url, "SELECT count(*) FROM images");
    assert_eq!(count, images.to_string());
}
