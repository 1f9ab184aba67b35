//! The store conformance suite on a real PostgreSQL (a throwaway cluster this test starts), plus
//! what only a shared database must show: replicas racing on one image, ids never reused, one
//! active job across connections, activations announced to every replica, refusals.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use sprig_store::conformance::{model_record, new_image};
use sprig_store::pg_test_cluster::cluster_or_skip;
use sprig_store::{Change, InsertOutcome, NewModelVersion, PgOptions, PgStore, StoreError, Stores};

/// Stores on a fresh database of the shared cluster, or `None` (a visible skip) without one.
fn fresh(case: &str) -> Option<Stores> {
    let cluster = cluster_or_skip(&format!("sprig_store::pg_conformance::{case}"))?;
    let url = cluster.create_database();
    Some(
        PgStore::connect(&PgOptions::new(&url))
            .unwrap()
            .into_stores(),
    )
}

sprig_store::conformance_tests!(optional fresh);

/// Two connections to one fresh database, as two replicas have.
fn two_replicas(case: &str) -> Option<(PgStore, PgStore)> {
    let (_, a, b) = two_replicas_of(case)?;
    Some((a, b))
}

fn two_replicas_of(case: &str) -> Option<(String, PgStore, PgStore)> {
    let cluster = cluster_or_skip(&format!("sprig_store::pg_conformance::{case}"))?;
    let url = cluster.create_database();
    let a = PgStore::connect(&PgOptions::new(&url)).unwrap();
    let b = PgStore::connect(&PgOptions::new(&url)).unwrap();
    Some((url, a, b))
}

#[test]
fn replicas_storing_the_same_image_at_once_store_it_once() {
    let Some((a, b)) = two_replicas("replicas_storing_the_same_image_at_once_store_it_once") else {
        return;
    };
    let (a, b) = (a.into_stores(), b.into_stores());
    const ROUNDS: u64 = 40;
    let barrier = Arc::new(Barrier::new(2));
    let race = |stores: Stores, barrier: Arc<Barrier>| {
        std::thread::spawn(move || {
            (0..ROUNDS)
                .map(|n| {
                    barrier.wait();
                    stores.images.insert(new_image("leaf", 1000 + n)).unwrap()
                })
                .collect::<Vec<_>>()
        })
    };
    let from_a = race(a.clone(), barrier.clone());
    let from_b = race(b.clone(), barrier);
    let (from_a, from_b) = (from_a.join().unwrap(), from_b.join().unwrap());
    for (x, y) in from_a.iter().zip(&from_b) {
        match (x, y) {
            (InsertOutcome::Stored(s), InsertOutcome::Duplicate(d))
            | (InsertOutcome::Duplicate(d), InsertOutcome::Stored(s)) => assert_eq!(s.id, d.id),
            other => panic!("expected one stored and one duplicate, got {other:?}"),
        }
    }
    assert_eq!(a.images.count().unwrap(), ROUNDS);
}

#[test]
fn ids_are_never_reused_across_replicas() {
    let Some((a, b)) = two_replicas("ids_are_never_reused_across_replicas") else {
        return;
    };
    let (a, b) = (a.into_stores(), b.into_stores());
    let first = match a.images.insert(new_image("x", 1)).unwrap() {
        InsertOutcome::Stored(r) => r.id,
        InsertOutcome::Duplicate(_) => unreachable!(),
    };
    a.images.delete(first).unwrap();
    let second = match b.images.insert(new_image("x", 1)).unwrap() {
        InsertOutcome::Stored(r) => r.id,
        InsertOutcome::Duplicate(_) => unreachable!(),
    };
    assert!(second > first, "image id {first} was reused as {second}");
    let v1 = a.models.create(NewModelVersion {
        record: model_record(&["a", "b"]),
        artifact: vec![1],
    });
    let v2 = b.models.create(NewModelVersion {
        record: model_record(&["a", "b"]),
        artifact: vec![2],
    });
    assert_eq!((v1.unwrap().version, v2.unwrap().version), (1, 2));
    let ids_a = a.predictions.next_id().unwrap();
    let ids_b = b.predictions.next_id().unwrap();
    assert!(ids_b > ids_a);
}

#[test]
fn one_active_job_per_kind_across_replicas() {
    let Some((a, b)) = two_replicas("one_active_job_per_kind_across_replicas") else {
        return;
    };
    let (a, b) = (a.into_stores(), b.into_stores());
    let job = a
        .jobs
        .create("retrain", serde_json::json!({}), true)
        .unwrap();
    match b.jobs.create("retrain", serde_json::json!({}), true) {
        Err(StoreError::Conflict { job_id, .. }) => assert_eq!(job_id, job.id),
        other => panic!("expected a conflict naming job {}, got {other:?}", job.id),
    }
    // An update made through one replica is seen by the other, and frees the slot there.
    a.jobs
        .update(job.id, &mut |j| j.state = sprig_store::JobState::Failed)
        .unwrap();
    assert!(b.jobs.active("retrain").unwrap().is_none());
    assert!(b
        .jobs
        .create("retrain", serde_json::json!({}), true)
        .is_ok());
}

#[test]
fn activation_and_job_changes_reach_the_other_replicas() {
    let Some((a, b)) = two_replicas("activation_and_job_changes_reach_the_other_replicas") else {
        return;
    };
    let mut changes = b.clone().into_stores().changes.subscribe();
    let a = a.into_stores();
    let started = Instant::now();
    let wait_for = |changes: &mut tokio::sync::broadcast::Receiver<Change>, wanted: Change| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match changes.try_recv() {
                Ok(change) if change == wanted => return,
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        panic!("{wanted:?} did not arrive within 5 s");
    };
    // B's listener connects in the background: wait until a change made through A arrives.
    let probe = a.jobs.create("probe", serde_json::json!({}), true).unwrap();
    let listening = (0..50).any(|_| {
        a.jobs.update(probe.id, &mut |_| {}).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        std::iter::from_fn(|| changes.try_recv().ok()).any(|c| c == Change::Job(probe.id))
    });
    assert!(listening, "B's listener never heard from A");
    let version = a
        .models
        .create(NewModelVersion {
            record: model_record(&["a", "b"]),
            artifact: vec![1],
        })
        .unwrap()
        .version;
    let sent = Instant::now();
    a.models.activate(version, "test").unwrap();
    wait_for(&mut changes, Change::ActiveModel(version));
    let latency = sent.elapsed();
    assert!(
        latency < Duration::from_secs(1),
        "activation took {latency:?} to arrive"
    );
    let job = a
        .jobs
        .create("retrain", serde_json::json!({}), true)
        .unwrap();
    wait_for(&mut changes, Change::Job(job.id));
    a.jobs.update(job.id, &mut |j| j.progress = 50.0).unwrap();
    wait_for(&mut changes, Change::Job(job.id));
    eprintln!("listener up after {:?}", started.elapsed());
}

#[test]
fn a_database_from_a_newer_sprig_is_refused() {
    let case = "a_database_from_a_newer_sprig_is_refused";
    let Some((url, a, _)) = two_replicas_of(case) else {
        return;
    };
    assert_eq!(a.schema_version().unwrap(), sprig_store::POSTGRES_SCHEMA);
    let cluster = cluster_or_skip(case).unwrap();
    cluster.sql(&url, "INSERT INTO sprig_schema (version) VALUES (999)");
    match PgStore::connect(&PgOptions::new(&url)) {
        Err(StoreError::SchemaMismatch { found, expected }) => {
            assert_eq!(
                (found, expected),
                (999, sprig_store::POSTGRES_SCHEMA as u32)
            )
        }
        Err(other) => panic!("expected a schema mismatch, got {other}"),
        Ok(_) => panic!("expected a schema mismatch, the database was accepted"),
    }
}

#[test]
fn an_unreachable_database_fails_fast_as_unavailable() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = PgOptions::new(&format!("postgres://sprig@127.0.0.1:{port}/sprig"));
    options.acquire_timeout = Duration::from_secs(2);
    let started = Instant::now();
    match PgStore::connect(&options) {
        Err(StoreError::Unavailable(_)) => {}
        Err(other) => panic!("expected unavailable, got {other}"),
        Ok(_) => panic!("connected to nothing"),
    }
    // Measured: ~2.0 s (the acquire timeout); well under the 10 s bound.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_embedded_store_moves_into_postgres_whole() {
    let case = "an_embedded_store_moves_into_postgres_whole";
    let Some((_, target, _)) = two_replicas_of(case) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = sprig_store::SledStore::open(dir.path())
        .unwrap()
        .into_stores()
        .unwrap();
    // Real content hashes: the import re-hashes every image's bytes.
    let hashed = |class: &str, n: u64| {
        use sha2::Digest;
        let mut image = new_image(class, n);
        image.sha256 = format!("{:x}", sha2::Sha256::digest(&image.bytes));
        image
    };
    let image_ids: Vec<u64> = (0..5)
        .map(|n| {
            match source
                .images
                .insert(hashed(if n % 2 == 0 { "a" } else { "b" }, 50 + n))
                .unwrap()
            {
                InsertOutcome::Stored(r) => r.id,
                InsertOutcome::Duplicate(_) => unreachable!(),
            }
        })
        .collect();
    source.images.delete(image_ids[1]).unwrap();
    for n in 0..2u8 {
        source
            .models
            .create(NewModelVersion {
                record: model_record(&["a", "b"]),
                artifact: vec![n; 300],
            })
            .unwrap();
    }
    source.models.activate(1, "bootstrap").unwrap();
    source.models.activate(2, "retrain").unwrap();
    let done = source
        .jobs
        .create("retrain", serde_json::json!({}), true)
        .unwrap();
    source
        .jobs
        .update(done.id, &mut |j| j.state = sprig_store::JobState::Succeeded)
        .unwrap();
    let pending = source
        .jobs
        .create("retrain", serde_json::json!({"epochs": 3}), true)
        .unwrap();
    let mut prediction = sprig_store::PredictionRecord {
        id: 0,
        created_at: chrono::Utc::now(),
        model_version: 2,
        predicted_class: "a".into(),
        predicted_index: 0,
        confidence: 0.9,
        probabilities: vec![],
        uncertainty: 0.2,
        entropy: 0.3,
        out_of_distribution: false,
        novelty: Some(0.5),
        label: None,
        latency_ms: 3.0,
        image_sha256: "00".repeat(32),
        filename: None,
    };
    source
        .predictions
        .record(vec![prediction.clone(); 3])
        .unwrap();
    source.predictions.prune(2, None).unwrap();
    // The review queue: a pending item with its image, a labelled one, and an eviction.
    let kept: Vec<u64> = source
        .predictions
        .list(sprig_store::PageRequest::new(1, 10))
        .unwrap()
        .items
        .iter()
        .map(|p| p.id)
        .collect();
    let item = |id: u64, content: u8| {
        let mut item = sprig_store::ReviewItem::pending(&prediction, 0);
        item.prediction_id = id;
        item.image_sha256 = format!("{content:064x}");
        item
    };
    source
        .reviews
        .keep(item(kept[0], 1), vec![1; 40], 1000)
        .unwrap();
    source
        .reviews
        .keep(item(kept[1], 2), vec![2; 40], 1000)
        .unwrap();
    source
        .reviews
        .keep(item(9_000, 3), vec![3; 40], 90)
        .unwrap(); // evicts kept[1]'s, the oldest
    let labelled = sprig_store::ReviewOutcome::Labelled {
        class: "a".into(),
        image_id: image_ids[0],
    };
    source.reviews.settle(kept[0], &labelled).unwrap();
    // Rollouts: one ended, one running with figures (the running one must stay the running one).
    let rollout = |mode| sprig_store::NewRollout {
        version: 2,
        mode,
        share: 0.25,
        baseline: 1,
        since_prediction: kept[0],
    };
    let ended = source
        .rollouts
        .start(rollout(sprig_store::RolloutMode::Shadow))
        .unwrap();
    let verdict = sprig_store::Verdict {
        at: chrono::Utc::now(),
        reasons: vec!["agreement 0.713 >= 0.95 (failed)".into()],
    };
    source
        .rollouts
        .finish(ended.id, sprig_store::RolloutState::RolledBack, verdict)
        .unwrap();
    let running = source
        .rollouts
        .start(rollout(sprig_store::RolloutMode::Canary))
        .unwrap();
    let mut figures = sprig_store::RolloutFigures::default();
    figures.candidate.observe(0.8125, 3.7);
    source.rollouts.add_figures(running.id, &figures).unwrap();

    let mut steps = Vec::new();
    let report = target
        .import(&source, &mut |step| steps.push(step.to_string()))
        .unwrap();
    assert_eq!(steps.last().map(String::as_str), Some("verifying"));
    assert_eq!(
        (
            report.images,
            report.versions,
            report.activations,
            report.jobs,
            report.predictions
        ),
        (4, 2, 2, 2, 2)
    );
    assert_eq!(report.jobs_interrupted, 1);
    assert_eq!(report.review_items, 2);
    assert_eq!(report.rollouts, 2);

    let copy = target.clone().into_stores();
    assert_eq!(
        copy.rollouts.running().unwrap().map(|r| r.id),
        Some(running.id)
    );
    assert!(matches!(
        copy.rollouts
            .start(rollout(sprig_store::RolloutMode::Shadow)),
        Err(sprig_store::StoreError::RolloutRunning { .. })
    ));
    // Records come over as they were, ids and all.
    assert_eq!(copy.images.all().unwrap(), source.images.all().unwrap());
    for id in &image_ids {
        assert_eq!(
            copy.images.content(*id).unwrap(),
            source.images.content(*id).unwrap()
        );
    }
    assert_eq!(copy.models.list().unwrap(), source.models.list().unwrap());
    assert_eq!(
        copy.models.history().unwrap(),
        source.models.history().unwrap()
    );
    assert_eq!(copy.models.active().unwrap(), Some(2));
    let page = sprig_store::PageRequest::new(1, 100);
    assert_eq!(
        copy.predictions.list(page).unwrap(),
        source.predictions.list(page).unwrap()
    );
    assert_eq!(
        copy.predictions.stats().unwrap(),
        source.predictions.stats().unwrap()
    );
    assert_eq!(
        copy.jobs.get(done.id).unwrap(),
        source.jobs.get(done.id).unwrap()
    );
    assert_eq!(
        copy.reviews.items().unwrap(),
        source.reviews.items().unwrap()
    );
    assert_eq!(
        copy.reviews.summary().unwrap(),
        source.reviews.summary().unwrap()
    );
    assert_eq!(copy.reviews.image(9_000).unwrap(), Some(vec![3; 40]));
    let carried = copy.jobs.get(pending.id).unwrap().unwrap();
    assert_eq!(carried.error.unwrap().code, "interrupted");
    // New ids continue after the carried ones, and a new retrain may start.
    let next = match copy.images.insert(new_image("a", 99)).unwrap() {
        InsertOutcome::Stored(r) => r.id,
        InsertOutcome::Duplicate(_) => unreachable!(),
    };
    assert!(next > *image_ids.iter().max().unwrap());
    let version = copy
        .models
        .create(NewModelVersion {
            record: model_record(&["a", "b"]),
            artifact: vec![7],
        })
        .unwrap();
    assert_eq!(version.version, 3);
    prediction.id = 0;
    let new_prediction = copy.predictions.record(vec![prediction]).unwrap()[0];
    assert!(new_prediction > source.predictions.list(page).unwrap().items[0].id);
    assert!(
        copy.jobs
            .create("retrain", serde_json::json!({}), true)
            .unwrap()
            .id
            > pending.id
    );
    assert_eq!(copy.models.history().unwrap().last().unwrap().sequence, 2);
    copy.models.activate(1, "rollback").unwrap();
    assert_eq!(copy.models.history().unwrap().last().unwrap().sequence, 3);

    // A second import into the now non-empty database is refused.
    assert!(target.import(&source, &mut |_| {}).is_err());
}

/// A database from before jobs and queue were one record (schema 1: a separate task table)
/// upgrades in place: its queued job is claimed from the job records, its job left running
/// (its task with it) is settled as interrupted, and the task table is gone.
#[test]
fn a_schema_1_database_keeps_its_queued_and_running_jobs() {
    let case = "a_schema_1_database_keeps_its_queued_and_running_jobs";
    let Some(cluster) = cluster_or_skip(&format!("sprig_store::pg_conformance::{case}")) else {
        return;
    };
    let url = cluster.create_database();
    cluster.sql(&url, include_str!("../src/postgres/schema_1.sql"));
    cluster.sql(
        &url,
        "CREATE TABLE sprig_schema (version integer NOT NULL); \
         INSERT INTO sprig_schema (version) VALUES (1)",
    );
    // Records as schema 1 wrote them: no `worker`, no `attempts`.
    let record = |id: u64, state: &str| {
        let mut job =
            sprig_store::JobRecord::new(id, "retrain", serde_json::json!({}), chrono::Utc::now());
        job.state = serde_json::from_value(serde_json::json!(state)).unwrap();
        let mut value = serde_json::to_value(&job).unwrap();
        let object = value.as_object_mut().unwrap();
        object.remove("worker");
        object.remove("attempts");
        value.to_string().replace('\'', "''")
    };
    cluster.sql(
        &url,
        &format!(
            "INSERT INTO jobs (kind, state, record) VALUES \
             ('retrain', 'succeeded', '{}'), ('retrain', 'running', '{}'); \
             INSERT INTO tasks (queue, status, created_at, payload, worker) VALUES \
             ('retrain', 'running', now(), convert_to('{{\"job_id\":2}}', 'UTF8'), 'retrain@gone')",
            record(1, "succeeded"),
            record(2, "running"),
        ),
    );

    let stores = PgStore::connect(&PgOptions::new(&url)).unwrap();
    assert_eq!(
        stores.schema_version().unwrap(),
        sprig_store::POSTGRES_SCHEMA
    );
    let stores = stores.into_stores();
    let jobs = stores.jobs.as_ref();
    assert_eq!(
        jobs.get(1).unwrap().unwrap().state,
        sprig_store::JobState::Succeeded
    );
    let interrupted = sprig_store::JobError {
        code: "interrupted".into(),
        message: "the process stopped".into(),
    };
    let settled = jobs
        .fail_orphaned("retrain", Duration::ZERO, &interrupted)
        .unwrap();
    assert_eq!(settled.iter().map(|j| j.id).collect::<Vec<_>>(), [2]);
    assert!(jobs.active("retrain").unwrap().is_none());
    let queued = jobs.create("retrain", serde_json::json!({}), true).unwrap();
    assert!(
        queued.id > 2,
        "ids continue after the old ones: {}",
        queued.id
    );
    let claimed = jobs.claim("retrain", "w", 1).unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        [queued.id]
    );
    assert_eq!(
        cluster.sql(
            &url,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'tasks'"
        ),
        "0"
    );
}
