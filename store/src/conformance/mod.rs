//! The behaviour every store implementation must show, written against the traits only, so the
//! same suite runs for sled today and for a PostgreSQL implementation later:
//!
//! ```ignore
//! sprig_store::conformance_tests!(|| my_backend_stores_on_a_fresh_database());
//! // An engine that may be missing here: the factory gets the case's name and returns `None`
//! // (after recording a visible skip) when it cannot run.
//! sprig_store::conformance_tests!(optional |case: &str| fresh_database_or_skip(case));
//! ```

mod job_queue;
mod review_queue;
mod rollouts;

use chrono::{Duration, Utc};
use serde_json::json;

use crate::*;

pub use job_queue::*;
pub use review_queue::*;
pub use rollouts::*;

/// Generates one `#[test]` per conformance case for a factory expression returning fresh [`Stores`].
#[macro_export]
macro_rules! conformance_tests {
    (optional $factory:expr) => {
        $crate::conformance_tests!(@list [optional $factory]);
    };
    ($factory:expr) => {
        $crate::conformance_tests!(@list [always $factory]);
    };
    (@list $how:tt) => {
        $crate::conformance_tests!(@cases $how;
            image_insert_get_and_content,
            image_dedup_by_hash,
            image_list_filters_and_pages,
            relabel_and_delete_keep_stats_consistent,
            delete_class_removes_all_its_images,
            predictions_newest_first_with_stats,
            prediction_retention_keeps_the_aggregates,
            model_versions_and_activation_log,
            activation_of_unknown_version_fails,
            only_the_first_activation_of_a_store_is_first,
            jobs_are_exclusive_per_kind,
            job_updates_and_counts,
            feature_cache_round_trip,
            job_queue_create_get_and_params,
            job_queue_claim_takes_oldest_queued_once,
            job_queue_finish_settles_running_jobs_only,
            job_queue_requeue_returns_claimed_jobs,
            job_queue_list_in_state,
            job_queue_workers_register_and_heartbeat,
            job_queue_concurrent_claims_never_share_a_job,
            job_queue_orphans_of_silent_workers_fail,
            job_queue_cancelled_jobs_are_never_claimed,
            job_queue_cases_share_one_database,
            review_queue_orders_by_uncertainty_and_pages,
            review_queue_keeps_an_image_once_and_settles_once,
            review_queue_evicts_the_oldest_beyond_its_budget,
            predictions_remember_their_review_label,
            rollouts_run_one_at_a_time_and_end_once,
            rollout_figures_from_every_process_add_up,
        );
    };
    (@cases [always $factory:expr]; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let stores = ($factory)();
                $crate::conformance::$case(&stores);
            }
        )*
    };
    (@cases [optional $factory:expr]; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                if let Some(stores) = ($factory)(stringify!($case)) {
                    $crate::conformance::$case(&stores);
                }
            }
        )*
    };
}

fn sha(n: u64) -> String {
    format!("{n:064x}")
}

/// A small image record for tests (bytes need not be a real image at this layer).
pub fn new_image(class: &str, n: u64) -> NewImage {
    let hash = sha(n);
    NewImage {
        class: class.into(),
        width: 10 + n as u32,
        height: 20,
        format: "png".into(),
        content_type: "image/png".into(),
        split: Split::from_hash(&hash, 20),
        sha256: hash,
        source: "upload".into(),
        filename: Some(format!("{n}.png")),
        created_at: Utc::now(),
        bytes: vec![n as u8; 16 + n as usize],
    }
}

fn stored(outcome: InsertOutcome) -> ImageRecord {
    match outcome {
        InsertOutcome::Stored(record) => record,
        InsertOutcome::Duplicate(record) => {
            panic!("expected a new image, got duplicate {}", record.id)
        }
    }
}

pub fn image_insert_get_and_content(stores: &Stores) {
    let image = new_image("cats", 1);
    let bytes = image.bytes.clone();
    let record = stored(stores.images.insert(image).unwrap());
    assert_eq!(
        stores.images.get(record.id).unwrap().as_ref(),
        Some(&record)
    );
    assert_eq!(
        stores.images.content(record.id).unwrap(),
        Some(bytes.clone())
    );
    assert_eq!(record.byte_size, bytes.len() as u64);
    assert_eq!(
        stores.images.find_by_hash(&sha(1)).unwrap().map(|r| r.id),
        Some(record.id)
    );
    assert_eq!(stores.images.count().unwrap(), 1);
    assert!(stores.images.get(record.id + 1000).unwrap().is_none());
}

pub fn image_dedup_by_hash(stores: &Stores) {
    let first = stored(stores.images.insert(new_image("cats", 2)).unwrap());
    match stores.images.insert(new_image("dogs", 2)).unwrap() {
        InsertOutcome::Duplicate(existing) => {
            assert_eq!(existing.id, first.id);
            assert_eq!(existing.class, "cats");
        }
        InsertOutcome::Stored(_) => panic!("same content stored twice"),
    }
    assert_eq!(stores.images.count().unwrap(), 1);
}

pub fn image_list_filters_and_pages(stores: &Stores) {
    for n in 0..7 {
        stored(
            stores
                .images
                .insert(new_image(if n % 2 == 0 { "a" } else { "b" }, 100 + n))
                .unwrap(),
        );
    }
    let all = stores
        .images
        .list(&ImageFilter::default(), PageRequest::new(1, 5))
        .unwrap();
    assert_eq!((all.total, all.items.len()), (7, 5));
    let second = stores
        .images
        .list(&ImageFilter::default(), PageRequest::new(2, 5))
        .unwrap();
    assert_eq!(second.items.len(), 2);
    assert!(all.items.iter().all(|r| !second.items.contains(r)));
    let only_a = ImageFilter {
        class: Some("a".into()),
        split: None,
    };
    let a = stores
        .images
        .list(&only_a, PageRequest::new(1, 100))
        .unwrap();
    assert_eq!(a.total, 4);
    assert!(a.items.iter().all(|r| r.class == "a"));
    let validation = ImageFilter {
        class: None,
        split: Some(Split::Validation),
    };
    let v = stores
        .images
        .list(&validation, PageRequest::new(1, 100))
        .unwrap();
    assert!(v.items.iter().all(|r| r.split == Split::Validation));
}

pub fn relabel_and_delete_keep_stats_consistent(stores: &Stores) {
    let ids: Vec<u64> = (0..4)
        .map(|n| stored(stores.images.insert(new_image("a", 200 + n)).unwrap()).id)
        .collect();
    let relabelled = stores.images.relabel(ids[0], "b").unwrap().unwrap();
    assert_eq!(relabelled.class, "b");
    let deleted = stores.images.delete(ids[1]).unwrap().unwrap();
    assert_eq!(deleted.id, ids[1]);
    assert!(stores.images.content(ids[1]).unwrap().is_none());
    assert!(stores
        .images
        .find_by_hash(&deleted.sha256)
        .unwrap()
        .is_none());
    assert!(stores.images.delete(ids[1]).unwrap().is_none());

    let stats = stores.images.stats().unwrap();
    assert_eq!(stats.total_images, 3);
    let count = |name: &str| {
        stats
            .classes
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.images)
    };
    assert_eq!((count("a"), count("b")), (2, 1));
    let all = stores.images.all().unwrap();
    assert_eq!(
        stats.total_bytes,
        all.iter().map(|r| r.byte_size).sum::<u64>()
    );
    assert_eq!(stats.uploads_per_day.iter().map(|(_, n)| n).sum::<u64>(), 3);
    for class in &stats.classes {
        assert_eq!(class.train + class.validation, class.images);
    }
    // The deleted content can be stored again.
    stored(stores.images.insert(new_image("a", 201)).unwrap());
}

pub fn delete_class_removes_all_its_images(stores: &Stores) {
    for n in 0..3 {
        stored(stores.images.insert(new_image("gone", 300 + n)).unwrap());
    }
    stored(stores.images.insert(new_image("kept", 310)).unwrap());
    assert_eq!(stores.images.delete_class("gone").unwrap(), 3);
    let classes = stores.images.classes().unwrap();
    assert_eq!(
        classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["kept"]
    );
    assert!(stores.images.find_by_hash(&sha(300)).unwrap().is_none());
}

fn prediction(class: &str, confidence: f32, version: u32, minutes_ago: i64) -> PredictionRecord {
    PredictionRecord {
        id: 0,
        created_at: Utc::now() - Duration::minutes(minutes_ago),
        model_version: version,
        predicted_class: class.into(),
        predicted_index: 0,
        confidence,
        probabilities: vec![ClassProbability {
            class: class.into(),
            probability: confidence,
        }],
        uncertainty: 1.0 - confidence,
        entropy: 0.5,
        out_of_distribution: false,
        novelty: None,
        label: None,
        latency_ms: 12.5,
        image_sha256: sha(9),
        filename: None,
    }
}

pub fn predictions_newest_first_with_stats(stores: &Stores) {
    let ids = stores
        .predictions
        .record(vec![
            prediction("a", 0.95, 1, 120),
            prediction("b", 0.55, 1, 60),
        ])
        .unwrap();
    let later = stores
        .predictions
        .record(vec![prediction("a", 0.15, 2, 0)])
        .unwrap();
    assert!(ids[0] < ids[1] && ids[1] < later[0]);
    let page = stores.predictions.list(PageRequest::new(1, 2)).unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(
        page.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        [later[0], ids[1]]
    );
    let stats = stores.predictions.stats().unwrap();
    assert_eq!(stats.total, 3);
    assert_eq!(stats.per_class.get("a"), Some(&2));
    assert_eq!(stats.per_model_version.get(&2), Some(&1));
    assert_eq!(stats.confidence_histogram.len(), CONFIDENCE_BUCKETS);
    assert_eq!(stats.confidence_histogram[9], 1);
    assert_eq!(stats.confidence_histogram[5], 1);
    assert_eq!(stats.confidence_histogram[1], 1);
    assert_eq!(stats.per_hour.values().sum::<u64>(), 3);
}

pub fn prediction_retention_keeps_the_aggregates(stores: &Stores) {
    let old = stores
        .predictions
        .record(vec![
            prediction("a", 0.9, 1, 300),
            prediction("b", 0.8, 1, 200),
        ])
        .unwrap();
    let recent = stores
        .predictions
        .record(vec![
            prediction("a", 0.7, 1, 2),
            prediction("a", 0.6, 1, 1),
            prediction("b", 0.5, 1, 0),
        ])
        .unwrap();
    let listed = |stores: &Stores| -> Vec<u64> {
        let page = stores.predictions.list(PageRequest::new(1, 100)).unwrap();
        assert_eq!(page.total as usize, page.items.len());
        page.items.iter().map(|p| p.id).collect()
    };
    // By count: the two oldest go.
    assert_eq!(stores.predictions.prune(4, None).unwrap(), 1);
    assert_eq!(listed(stores), [recent[2], recent[1], recent[0], old[1]]);
    // By age: everything before an hour ago goes, newer ones stay.
    let hour_ago = Utc::now() - Duration::minutes(60);
    assert_eq!(stores.predictions.prune(100, Some(hour_ago)).unwrap(), 1);
    assert_eq!(listed(stores), [recent[2], recent[1], recent[0]]);
    assert_eq!(stores.predictions.prune(100, Some(hour_ago)).unwrap(), 0);
    // The aggregates still count all five.
    let stats = stores.predictions.stats().unwrap();
    assert_eq!(stats.total, 5);
    assert_eq!(stats.per_class.get("a"), Some(&3));
    // New ids keep increasing after a prune (never reused).
    let next = stores
        .predictions
        .record(vec![prediction("a", 0.5, 1, 0)])
        .unwrap();
    assert!(next[0] > recent[2]);
}

/// A version record for tests; the store overwrites `version`.
pub fn model_record(classes: &[&str]) -> ModelVersionRecord {
    ModelVersionRecord {
        version: 0,
        created_at: Utc::now(),
        backbone: "mobilenet_v2".into(),
        classes: classes.iter().map(|c| c.to_string()).collect(),
        hyperparameters: json!({"epochs": 3}),
        data_snapshot: DataSnapshot {
            class_counts: Default::default(),
            total_images: 0,
            image_set_hash: sha(0),
        },
        epochs: vec![],
        best_epoch: 1,
        duration_ms: 5,
        backend: "flex".into(),
        evaluation: Evaluation {
            examples: 0,
            accuracy: 0.5,
            loss: 1.0,
            macro_f1: 0.5,
            per_class: vec![],
            confusion_matrix: vec![],
            calibration: None,
        },
        origin: "retrain".into(),
        job_id: None,
        reference: None,
    }
}

pub fn model_versions_and_activation_log(stores: &Stores) {
    assert_eq!(stores.models.active().unwrap(), None);
    let v1 = stores
        .models
        .create(NewModelVersion {
            record: model_record(&["a", "b"]),
            artifact: vec![1, 2, 3],
        })
        .unwrap();
    let v2 = stores
        .models
        .create(NewModelVersion {
            record: model_record(&["a", "b", "c"]),
            artifact: vec![4],
        })
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(stores.models.artifact(1).unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(stores.models.get(2).unwrap().unwrap().classes.len(), 3);
    assert_eq!(stores.models.list().unwrap().len(), 2);

    stores.models.activate(1, "bootstrap").unwrap();
    stores.models.activate(2, "retrain").unwrap();
    let back = stores.models.activate(1, "rollback").unwrap();
    assert_eq!((back.from, back.to), (Some(2), 1));
    assert_eq!(stores.models.active().unwrap(), Some(1));
    let history = stores.models.history().unwrap();
    assert_eq!(
        history
            .iter()
            .map(|h| (h.from, h.to, h.reason.as_str()))
            .collect::<Vec<_>>(),
        [
            (None, 1, "bootstrap"),
            (Some(1), 2, "retrain"),
            (Some(2), 1, "rollback")
        ]
    );
}

pub fn activation_of_unknown_version_fails(stores: &Stores) {
    assert!(matches!(
        stores.models.activate(42, "x"),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(stores.models.active().unwrap(), None);
    assert!(stores.models.history().unwrap().is_empty());
}

pub fn only_the_first_activation_of_a_store_is_first(stores: &Stores) {
    for artifact in [vec![1], vec![2]] {
        stores
            .models
            .create(NewModelVersion {
                record: model_record(&["a", "b"]),
                artifact,
            })
            .unwrap();
    }
    let first = stores.models.activate_first(1, "bootstrap").unwrap();
    assert_eq!(first.map(|e| (e.from, e.to)), Some((None, 1)));
    // A second bootstrapper finds a version active: nothing changes.
    assert!(stores
        .models
        .activate_first(2, "bootstrap")
        .unwrap()
        .is_none());
    assert_eq!(stores.models.active().unwrap(), Some(1));
    assert_eq!(stores.models.history().unwrap().len(), 1);
    assert!(matches!(
        stores.models.activate_first(42, "x"),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn jobs_are_exclusive_per_kind(stores: &Stores) {
    let first = stores.jobs.create("retrain", json!({}), true).unwrap();
    assert_eq!(first.state, JobState::Queued);
    match stores.jobs.create("retrain", json!({}), true) {
        Err(StoreError::Conflict { job_id, .. }) => assert_eq!(job_id, first.id),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A job that is not exclusive is neither refused nor counted as the kind's active one.
    let loose = stores.jobs.create("retrain", json!({}), false).unwrap();
    assert_eq!(loose.state, JobState::Queued);
    assert_eq!(
        stores.jobs.active("retrain").unwrap().map(|j| j.id),
        Some(first.id)
    );
    stores
        .jobs
        .update(first.id, &mut |job| job.state = JobState::Running)
        .unwrap();
    assert!(stores.jobs.create("retrain", json!({}), true).is_err());
    stores
        .jobs
        .update(first.id, &mut |job| job.state = JobState::Succeeded)
        .unwrap();
    assert!(stores.jobs.active("retrain").unwrap().is_none());
    let second = stores
        .jobs
        .create("retrain", json!({"epochs": 2}), true)
        .unwrap();
    assert!(second.id > first.id);
}

pub fn job_updates_and_counts(stores: &Stores) {
    let job = stores.jobs.create("retrain", json!({}), true).unwrap();
    let updated = stores
        .jobs
        .update(job.id, &mut |j| {
            j.progress = 40.0;
            j.current_epoch = Some(2);
        })
        .unwrap();
    assert_eq!(updated.progress, 40.0);
    assert_eq!(
        stores.jobs.get(job.id).unwrap().unwrap().current_epoch,
        Some(2)
    );
    assert!(matches!(
        stores.jobs.update(job.id + 99, &mut |_| {}),
        Err(StoreError::NotFound { .. })
    ));
    let page = stores.jobs.list(PageRequest::new(1, 10)).unwrap();
    assert_eq!(page.total, 1);
    let counts = stores.jobs.count_by_state().unwrap();
    assert_eq!(
        counts
            .iter()
            .find(|(s, _)| *s == JobState::Queued)
            .map(|c| c.1),
        Some(1)
    );
}

pub fn feature_cache_round_trip(stores: &Stores) {
    let key = FeatureKey {
        sha256: sha(5),
        backbone: "mobilenet_v2".into(),
        view: 0,
    };
    assert!(stores.features.get(&key).unwrap().is_none());
    let values: Vec<f32> = (0..1280).map(|i| i as f32 * 0.5).collect();
    stores
        .features
        .put(vec![(key.clone(), values.clone())])
        .unwrap();
    assert_eq!(stores.features.get(&key).unwrap(), Some(values));
    let other_view = FeatureKey { view: 1, ..key };
    assert!(stores.features.get(&other_view).unwrap().is_none());
    assert_eq!(stores.features.count().unwrap(), 1);
}
