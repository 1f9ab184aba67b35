//! Rollouts' cases of the conformance suite, written against [`RolloutStore`] only.

use chrono::Utc;

use crate::error::StoreError;
use crate::rollout::*;
use crate::stores::Stores;

fn shadow_of(version: u32) -> NewRollout {
    NewRollout {
        version,
        mode: RolloutMode::Shadow,
        share: 0.5,
        baseline: 1,
        since_prediction: 7,
    }
}

fn verdict(reason: &str) -> Verdict {
    Verdict {
        at: Utc::now(),
        reasons: vec![reason.into()],
    }
}

pub fn rollouts_run_one_at_a_time_and_end_once(stores: &Stores) {
    let rollouts = &stores.rollouts;
    assert!(rollouts.running().unwrap().is_none());
    let first = rollouts.start(shadow_of(2)).unwrap();
    assert_eq!(
        (first.state, first.version, first.since_prediction),
        (RolloutState::Running, 2, 7)
    );
    assert_eq!(rollouts.running().unwrap(), Some(first.clone()));
    match rollouts.start(shadow_of(3)) {
        Err(StoreError::RolloutRunning { id, version }) => assert_eq!((id, version), (first.id, 2)),
        other => panic!("a second rollout started beside the first: {other:?}"),
    }
    let ended = rollouts
        .finish(
            first.id,
            RolloutState::Promoted,
            verdict("agreement 0.99 >= 0.95"),
        )
        .unwrap()
        .expect("a running rollout ends");
    assert_eq!(ended.state, RolloutState::Promoted);
    assert!(ended.ended_at.is_some());
    assert_eq!(
        ended.verdict.unwrap().reasons,
        vec!["agreement 0.99 >= 0.95"]
    );
    // Ended once: a second verdict (another replica's) is refused.
    assert!(rollouts
        .finish(first.id, RolloutState::RolledBack, verdict("late"))
        .unwrap()
        .is_none());
    assert_eq!(
        rollouts.get(first.id).unwrap().unwrap().state,
        RolloutState::Promoted
    );
    assert!(rollouts.running().unwrap().is_none());

    let mut canary = shadow_of(3);
    canary.mode = RolloutMode::Canary;
    let second = rollouts.start(canary).unwrap();
    assert!(second.id > first.id);
    let listed: Vec<u64> = rollouts.list().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(listed, vec![second.id, first.id], "newest first");
    assert!(rollouts.get(9_999).unwrap().is_none());
}

pub fn rollout_figures_from_every_process_add_up(stores: &Stores) {
    let id = stores.rollouts.start(shadow_of(2)).unwrap().id;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let rollouts = stores.rollouts.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    let mut figures = RolloutFigures::default();
                    figures.candidate.observe(0.5, 4.0 + f64::from(i));
                    figures.compared = 1;
                    figures.agreed = 1;
                    figures.disagreements.insert("a -> b".into(), 2);
                    rollouts.add_figures(id, &figures).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let record = stores.rollouts.get(id).unwrap().unwrap();
    assert_eq!(record.figures.candidate.requests, 40, "no addition lost");
    assert_eq!(record.figures.agreed, 40);
    assert_eq!(record.figures.disagreements["a -> b"], 80);
    assert_eq!(record.figures.candidate.latency_max_ms, 13.0);
    assert_eq!(record.figures.candidate.mean_confidence(), Some(0.5));
    // Figures gathered just before the end still count.
    stores
        .rollouts
        .finish(id, RolloutState::Stopped, verdict("stopped"))
        .unwrap();
    let late = RolloutFigures {
        dropped: 3,
        ..RolloutFigures::default()
    };
    let record = stores.rollouts.add_figures(id, &late).unwrap();
    assert_eq!(
        (record.figures.dropped, record.state),
        (3, RolloutState::Stopped)
    );
    assert!(matches!(
        stores.rollouts.add_figures(9_999, &late),
        Err(StoreError::NotFound { .. })
    ));
}
