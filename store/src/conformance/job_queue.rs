//! The job queue's cases of the conformance suite, written against [`JobStore`] only: the job
//! records users follow are the queue workers claim from. Each case uses its own job kinds, so
//! they may also share one database ([`job_queue_cases_share_one_database`]).

use serde_json::json;

use crate::error::StoreError;
use crate::stores::{JobStore, Stores};
use crate::types::{JobError, JobOutcome, JobState};

/// Every job queue case below on the same stores, one after the other.
pub fn job_queue_cases_share_one_database(stores: &Stores) {
    job_queue_create_get_and_params(stores);
    job_queue_claim_takes_oldest_queued_once(stores);
    job_queue_finish_settles_running_jobs_only(stores);
    job_queue_requeue_returns_claimed_jobs(stores);
    job_queue_list_in_state(stores);
    job_queue_workers_register_and_heartbeat(stores);
    job_queue_concurrent_claims_never_share_a_job(stores);
    job_queue_orphans_of_silent_workers_fail(stores);
    job_queue_cancelled_jobs_are_never_claimed(stores);
}

fn jobs(stores: &Stores) -> &dyn JobStore {
    stores.jobs.as_ref()
}

fn error(code: &str) -> JobError {
    JobError {
        code: code.into(),
        message: format!("{code} happened"),
    }
}

/// Created jobs are queued, with increasing ids and their parameters kept as given; jobs that
/// are not exclusive do not exclude each other.
pub fn job_queue_create_get_and_params(stores: &Stores) {
    let queue = jobs(stores);
    let first = queue.create("c-push", json!({"a": 1}), false).unwrap();
    let second = queue.create("c-push", json!([0, 255, 7]), false).unwrap();
    assert!(second.id > first.id);
    assert_eq!(first.kind, "c-push");
    assert_eq!(first.state, JobState::Queued);
    assert_eq!((first.attempts, first.worker.clone()), (0, None));
    assert_eq!(queue.get(first.id).unwrap(), Some(first.clone()));
    assert_eq!(
        queue.get(second.id).unwrap().unwrap().params,
        json!([0, 255, 7])
    );
    assert_eq!(queue.get(u64::MAX).unwrap(), None);
    assert_eq!(queue.active("c-push").unwrap(), None);
}

/// Claims hand out the oldest queued jobs of the kind, each once, up to the limit, and the
/// claimed record is the job's record.
pub fn job_queue_claim_takes_oldest_queued_once(stores: &Stores) {
    let queue = jobs(stores);
    let ids: Vec<u64> = (0..3)
        .map(|n| queue.create("c-claim", json!(n), false).unwrap().id)
        .collect();
    let other = queue.create("c-claim-other", json!(9), false).unwrap();

    let first = queue.claim("c-claim", "w1", 2).unwrap();
    assert_eq!(first.iter().map(|j| j.id).collect::<Vec<_>>(), ids[..2]);
    assert_eq!(first[0].params, json!(0));
    let record = &first[0];
    assert_eq!(record.state, JobState::Running);
    assert_eq!(record.worker.as_deref(), Some("w1"));
    assert_eq!(record.attempts, 1);
    assert!(record.started_at.is_some());
    assert_eq!(queue.get(ids[0]).unwrap().as_ref(), Some(record));

    let second = queue.claim("c-claim", "w2", 5).unwrap();
    assert_eq!(second.iter().map(|j| j.id).collect::<Vec<_>>(), ids[2..]);
    assert!(queue.claim("c-claim", "w1", 5).unwrap().is_empty());
    assert_eq!(
        queue.get(other.id).unwrap().unwrap().state,
        JobState::Queued
    );
    assert!(queue.claim("c-claim-empty", "w1", 1).unwrap().is_empty());
}

/// Outcomes settle running jobs only; a job whose handler already wrote its end state keeps
/// it; unknown ids are not found.
pub fn job_queue_finish_settles_running_jobs_only(stores: &Stores) {
    let queue = jobs(stores);
    for _ in 0..3 {
        queue.create("c-finish", json!(null), false).unwrap();
    }
    let claimed = queue.claim("c-finish", "w", 3).unwrap();
    let [done, failed, written] = [0, 1, 2].map(|i| claimed[i].id);

    let record = queue.finish(done, &JobOutcome::Succeeded).unwrap();
    assert_eq!(
        (record.state, record.progress, record.error.clone()),
        (JobState::Succeeded, 100.0, None)
    );
    assert!(record.finished_at.is_some());
    let record = queue
        .finish(failed, &JobOutcome::Failed(error("boom")))
        .unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert_eq!(record.error, Some(error("boom")));
    assert_eq!(queue.get(failed).unwrap(), Some(record));

    // The handler settles its job with more detail than an outcome carries; the worker's later
    // report does not overwrite it.
    let handled = queue
        .update(written, &mut |job| {
            job.state = JobState::Succeeded;
            job.model_version = Some(7);
            job.message = "version 7 trained".into();
        })
        .unwrap();
    let again = queue
        .finish(written, &JobOutcome::Failed(error("late")))
        .unwrap();
    assert_eq!(again, handled);
    // Neither does a report for a job that never ran.
    let queued = queue.create("c-finish", json!(null), false).unwrap();
    assert_eq!(
        queue.finish(queued.id, &JobOutcome::Succeeded).unwrap(),
        queued
    );
    assert!(matches!(
        queue.finish(u64::MAX, &JobOutcome::Succeeded),
        Err(StoreError::NotFound { what: "job", .. })
    ));
}

/// Re-queued running jobs are queued again and claimed before younger jobs.
pub fn job_queue_requeue_returns_claimed_jobs(stores: &Stores) {
    let queue = jobs(stores);
    let old = queue.create("c-requeue", json!(1), false).unwrap();
    let young = queue.create("c-requeue", json!(2), false).unwrap();
    let claimed = queue.claim("c-requeue", "w", 1).unwrap();
    assert_eq!(claimed[0].id, old.id);

    assert_eq!(queue.requeue(&[old.id, young.id, u64::MAX]).unwrap(), 1);
    let record = queue.get(old.id).unwrap().unwrap();
    assert_eq!(
        (
            record.state,
            record.worker,
            record.started_at,
            record.attempts
        ),
        (JobState::Queued, None, None, 0)
    );

    let again = queue.claim("c-requeue", "w", 1).unwrap();
    assert_eq!(again[0].id, old.id);
    queue.finish(old.id, &JobOutcome::Succeeded).unwrap();
    assert_eq!(queue.requeue(&[old.id]).unwrap(), 0);
    assert_eq!(
        queue.get(old.id).unwrap().unwrap().state,
        JobState::Succeeded
    );
}

/// Listing by state filters by kind and keeps creation order, up to the limit.
pub fn job_queue_list_in_state(stores: &Stores) {
    let queue = jobs(stores);
    let ids: Vec<u64> = (0..5)
        .map(|_| queue.create("c-list", json!(null), false).unwrap().id)
        .collect();
    queue.create("c-list-other", json!(null), false).unwrap();
    queue.claim("c-list", "w", 2).unwrap();
    queue
        .finish(ids[0], &JobOutcome::Failed(error("x")))
        .unwrap();

    let ids_in = |state, limit| -> Vec<u64> {
        queue
            .list_in("c-list", state, limit)
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect()
    };
    assert_eq!(ids_in(JobState::Queued, 10), ids[2..]);
    assert_eq!(ids_in(JobState::Queued, 2), ids[2..4]);
    assert_eq!(ids_in(JobState::Running, 10), ids[1..2]);
    assert_eq!(ids_in(JobState::Failed, 10), ids[..1]);
    assert!(ids_in(JobState::Succeeded, 10).is_empty());
}

/// Workers are listed per kind; heartbeats move `last_seen` and keep `registered_at`.
pub fn job_queue_workers_register_and_heartbeat(stores: &Stores) {
    let queue = jobs(stores);
    let registered = queue.register_worker("c-workers", "w1").unwrap();
    queue.register_worker("c-workers-other", "w1").unwrap();
    assert_eq!(registered.last_seen, registered.registered_at);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let beat = queue.heartbeat("c-workers", "w1").unwrap();
    assert_eq!(beat.registered_at, registered.registered_at);
    assert!(beat.last_seen > registered.last_seen);
    // A heartbeat from an unknown worker registers it.
    queue.heartbeat("c-workers", "w2").unwrap();

    let workers = queue.workers("c-workers").unwrap();
    let names: Vec<&str> = workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["w1", "w2"]);
    assert_eq!(workers[0], beat);
    assert_eq!(queue.workers("c-workers-other").unwrap().len(), 1);
    assert!(queue.workers("c-workers-none").unwrap().is_empty());
}

/// Workers claiming at the same time never get the same job, and together get them all.
pub fn job_queue_concurrent_claims_never_share_a_job(stores: &Stores) {
    let queue = jobs(stores);
    let created: Vec<u64> = (0..40)
        .map(|_| queue.create("c-concurrent", json!(null), false).unwrap().id)
        .collect();
    let mut claimed: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let batch = queue.claim("c-concurrent", &format!("w{w}"), 3).unwrap();
                        if batch.is_empty() {
                            return mine;
                        }
                        mine.extend(batch.iter().map(|j| j.id));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    claimed.sort_unstable();
    assert_eq!(claimed, created);
}

/// Running jobs whose worker went silent for the lease are failed with the given error, once;
/// those of live workers are not.
pub fn job_queue_orphans_of_silent_workers_fail(stores: &Stores) {
    let q = jobs(stores);
    let live = q.create("orphans", json!("live"), false).unwrap();
    let dead = q.create("orphans", json!("dead"), false).unwrap();
    q.register_worker("orphans", "live-worker").unwrap();
    assert_eq!(q.claim("orphans", "live-worker", 1).unwrap()[0].id, live.id);
    assert_eq!(q.claim("orphans", "dead-worker", 1).unwrap()[0].id, dead.id);
    // Claiming is a sign of life: right after it, neither job is an orphan.
    let lease = std::time::Duration::from_millis(500);
    assert!(q
        .fail_orphaned("orphans", lease, &error("x"))
        .unwrap()
        .is_empty());
    // Then only one of the two workers keeps beating.
    std::thread::sleep(lease + std::time::Duration::from_millis(100));
    q.heartbeat("orphans", "live-worker").unwrap();
    let failed = q
        .fail_orphaned("orphans", lease, &error("interrupted"))
        .unwrap();
    assert_eq!(failed.iter().map(|j| j.id).collect::<Vec<_>>(), [dead.id]);
    assert_eq!(failed[0].state, JobState::Failed);
    assert_eq!(failed[0].error, Some(error("interrupted")));
    assert!(failed[0].finished_at.is_some());
    assert_eq!(q.get(dead.id).unwrap().as_ref(), Some(&failed[0]));
    assert_eq!(q.get(live.id).unwrap().unwrap().state, JobState::Running);
    // Settled jobs are not failed twice.
    assert!(q
        .fail_orphaned("orphans", lease, &error("again"))
        .unwrap()
        .is_empty());

    // With no grace at all, every running job counts as orphaned (one process, at start-up).
    std::thread::sleep(std::time::Duration::from_millis(20));
    let all = q
        .fail_orphaned("orphans", std::time::Duration::ZERO, &error("interrupted"))
        .unwrap();
    assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), [live.id]);
}

/// A job cancelled while queued leaves the queue: no worker ever claims it, and the exclusive
/// slot of its kind is free again.
pub fn job_queue_cancelled_jobs_are_never_claimed(stores: &Stores) {
    let q = jobs(stores);
    let cancelled = q.create("c-cancel", json!(1), true).unwrap();
    assert_eq!(q.active("c-cancel").unwrap(), Some(cancelled.clone()));
    q.update(cancelled.id, &mut |job| job.state = JobState::Cancelled)
        .unwrap();
    assert_eq!(q.active("c-cancel").unwrap(), None);
    let next = q.create("c-cancel", json!(2), true).unwrap();
    let claimed = q.claim("c-cancel", "w", 5).unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), [next.id]);
}
