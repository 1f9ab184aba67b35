//! The task queue's cases of the conformance suite, written against [`TaskQueue`] only. Each
//! case uses its own queue names, so they may also share one database
//! ([`task_queue_cases_share_one_database`]).

use crate::error::StoreError;
use crate::queue::{TaskOutcome, TaskStatus};
use crate::stores::Stores;

/// Every task queue case below on the same stores, one after the other.
pub fn task_queue_cases_share_one_database(stores: &Stores) {
    task_queue_push_get_and_payload(stores);
    task_queue_claim_takes_oldest_pending_once(stores);
    task_queue_finish_records_outcome(stores);
    task_queue_requeue_returns_claimed_tasks(stores);
    task_queue_list_by_status(stores);
    task_queue_workers_register_and_heartbeat(stores);
    task_queue_concurrent_claims_never_share_a_task(stores);
    task_queue_orphans_of_silent_workers_fail(stores);
}

/// Pushed tasks are pending, with increasing ids and their payload kept as given.
pub fn task_queue_push_get_and_payload(stores: &Stores) {
    let queue = stores.tasks.as_ref();
    let first = queue.push("c-push", b"{\"a\":1}".to_vec()).unwrap();
    let second = queue.push("c-push", vec![0, 255, 7]).unwrap();
    assert!(second.id > first.id);
    assert_eq!(first.queue, "c-push");
    assert_eq!(first.status, TaskStatus::Pending);
    assert_eq!(first.attempts, 0);
    assert_eq!(
        (first.last_error.clone(), first.worker.clone()),
        (None, None)
    );
    assert_eq!(queue.get(first.id).unwrap(), Some(first.clone()));
    assert_eq!(
        queue.payload(first.id).unwrap(),
        Some(b"{\"a\":1}".to_vec())
    );
    assert_eq!(queue.payload(second.id).unwrap(), Some(vec![0, 255, 7]));
    assert_eq!(queue.get(u64::MAX).unwrap(), None);
    assert_eq!(queue.payload(u64::MAX).unwrap(), None);
}

/// Claims hand out the oldest pending tasks of the queue, each once, up to the limit.
pub fn task_queue_claim_takes_oldest_pending_once(stores: &Stores) {
    let queue = stores.tasks.as_ref();
    let ids: Vec<u64> = (0..3u8)
        .map(|n| queue.push("c-claim", vec![n]).unwrap().id)
        .collect();
    let other = queue.push("c-claim-other", vec![9]).unwrap();

    let first = queue.claim("c-claim", "w1", 2).unwrap();
    assert_eq!(
        first.iter().map(|t| t.record.id).collect::<Vec<_>>(),
        ids[..2]
    );
    assert_eq!(first[0].payload, vec![0]);
    let record = &first[0].record;
    assert_eq!(record.status, TaskStatus::Running);
    assert_eq!(record.worker.as_deref(), Some("w1"));
    assert!(record.started_at.is_some());
    assert_eq!(queue.get(ids[0]).unwrap().as_ref(), Some(record));

    let second = queue.claim("c-claim", "w2", 5).unwrap();
    assert_eq!(
        second.iter().map(|t| t.record.id).collect::<Vec<_>>(),
        ids[2..]
    );
    assert!(queue.claim("c-claim", "w1", 5).unwrap().is_empty());
    assert_eq!(
        queue.get(other.id).unwrap().unwrap().status,
        TaskStatus::Pending
    );
    assert!(queue.claim("c-claim-empty", "w1", 1).unwrap().is_empty());
}

/// Outcomes are recorded on running tasks only; unknown ids are not found.
pub fn task_queue_finish_records_outcome(stores: &Stores) {
    let queue = stores.tasks.as_ref();
    for _ in 0..3 {
        queue.push("c-finish", Vec::new()).unwrap();
    }
    let claimed = queue.claim("c-finish", "w", 3).unwrap();
    let [done, failed, killed] = [0, 1, 2].map(|i| claimed[i].record.id);

    let record = queue.finish(done, 1, TaskOutcome::Done).unwrap();
    assert_eq!(
        (record.status, record.attempts, record.last_error),
        (TaskStatus::Done, 1, None)
    );
    assert!(record.finished_at.is_some());
    let record = queue
        .finish(failed, 2, TaskOutcome::Failed("boom".into()))
        .unwrap();
    assert_eq!(record.status, TaskStatus::Failed);
    assert_eq!(
        (record.attempts, record.last_error.as_deref()),
        (2, Some("boom"))
    );
    let record = queue
        .finish(killed, 1, TaskOutcome::Killed("panic".into()))
        .unwrap();
    assert_eq!(
        (record.status, record.last_error.as_deref()),
        (TaskStatus::Killed, Some("panic"))
    );
    assert_eq!(queue.get(killed).unwrap(), Some(record));

    // A repeated report does not overwrite the first.
    let again = queue
        .finish(done, 5, TaskOutcome::Failed("late".into()))
        .unwrap();
    assert_eq!((again.status, again.attempts), (TaskStatus::Done, 1));
    // Neither does a report for a task that never ran.
    let pending = queue.push("c-finish", Vec::new()).unwrap();
    let unchanged = queue.finish(pending.id, 1, TaskOutcome::Done).unwrap();
    assert_eq!(unchanged, pending);
    assert!(matches!(
        queue.finish(u64::MAX, 1, TaskOutcome::Done),
        Err(StoreError::NotFound { what: "task", .. })
    ));
}

/// Re-queued running tasks are pending again and claimed before younger tasks.
pub fn task_queue_requeue_returns_claimed_tasks(stores: &Stores) {
    let queue = stores.tasks.as_ref();
    let old = queue.push("c-requeue", vec![1]).unwrap();
    let young = queue.push("c-requeue", vec![2]).unwrap();
    let claimed = queue.claim("c-requeue", "w", 1).unwrap();
    assert_eq!(claimed[0].record.id, old.id);

    assert_eq!(queue.requeue(&[old.id, young.id, u64::MAX]).unwrap(), 1);
    let record = queue.get(old.id).unwrap().unwrap();
    assert_eq!(
        (record.status, record.worker, record.started_at),
        (TaskStatus::Pending, None, None)
    );

    let again = queue.claim("c-requeue", "w", 1).unwrap();
    assert_eq!(again[0].record.id, old.id);
    queue.finish(old.id, 1, TaskOutcome::Done).unwrap();
    assert_eq!(queue.requeue(&[old.id]).unwrap(), 0);
    assert_eq!(queue.get(old.id).unwrap().unwrap().status, TaskStatus::Done);
}

/// Listing filters by queue and status and keeps push order.
pub fn task_queue_list_by_status(stores: &Stores) {
    let queue = stores.tasks.as_ref();
    let ids: Vec<u64> = (0..4)
        .map(|_| queue.push("c-list", Vec::new()).unwrap().id)
        .collect();
    queue.push("c-list-other", Vec::new()).unwrap();
    queue.claim("c-list", "w", 2).unwrap();
    queue
        .finish(ids[0], 1, TaskOutcome::Failed("x".into()))
        .unwrap();

    let ids_in = |status| -> Vec<u64> {
        queue
            .list("c-list", status)
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect()
    };
    assert_eq!(ids_in(TaskStatus::Pending), ids[2..]);
    assert_eq!(ids_in(TaskStatus::Running), ids[1..2]);
    assert_eq!(ids_in(TaskStatus::Failed), ids[..1]);
    assert!(ids_in(TaskStatus::Done).is_empty());
}

/// Workers are listed per queue; heartbeats move `last_seen` and keep `registered_at`.
pub fn task_queue_workers_register_and_heartbeat(stores: &Stores) {
    let queue = stores.tasks.as_ref();
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

/// Workers claiming at the same time never get the same task, and together get them all.
pub fn task_queue_concurrent_claims_never_share_a_task(stores: &Stores) {
    let queue = stores.tasks.as_ref();
    let pushed: Vec<u64> = (0..40)
        .map(|_| queue.push("c-concurrent", Vec::new()).unwrap().id)
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
                        mine.extend(batch.iter().map(|t| t.record.id));
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
    assert_eq!(claimed, pushed);
}

pub fn task_queue_orphans_of_silent_workers_fail(stores: &Stores) {
    let q = &stores.tasks;
    let live = q.push("orphans", b"live".to_vec()).unwrap();
    let dead = q.push("orphans", b"dead".to_vec()).unwrap();
    q.register_worker("orphans", "live-worker").unwrap();
    assert_eq!(
        q.claim("orphans", "live-worker", 1).unwrap()[0].record.id,
        live.id
    );
    assert_eq!(
        q.claim("orphans", "dead-worker", 1).unwrap()[0].record.id,
        dead.id
    );
    // Claiming is a sign of life: right after it, neither task is an orphan.
    let lease = std::time::Duration::from_millis(500);
    assert!(q.fail_orphaned("orphans", lease, "x").unwrap().is_empty());
    // Then only one of the two workers keeps beating.
    std::thread::sleep(lease + std::time::Duration::from_millis(100));
    q.heartbeat("orphans", "live-worker").unwrap();
    let failed = q.fail_orphaned("orphans", lease, "interrupted").unwrap();
    assert_eq!(failed.iter().map(|t| t.id).collect::<Vec<_>>(), [dead.id]);
    assert_eq!(failed[0].status, TaskStatus::Failed);
    assert_eq!(failed[0].last_error.as_deref(), Some("interrupted"));
    assert_eq!(failed[0].attempts, 1);
    assert_eq!(q.get(live.id).unwrap().unwrap().status, TaskStatus::Running);
    // Settled tasks are not failed twice.
    assert!(q
        .fail_orphaned("orphans", lease, "again")
        .unwrap()
        .is_empty());

    // With no grace at all, every running task counts as orphaned (one process, at start-up).
    std::thread::sleep(std::time::Duration::from_millis(20));
    let all = q
        .fail_orphaned("orphans", std::time::Duration::ZERO, "interrupted")
        .unwrap();
    assert_eq!(all.iter().map(|t| t.id).collect::<Vec<_>>(), [live.id]);
}
