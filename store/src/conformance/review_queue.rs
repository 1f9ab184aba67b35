//! The review queue's cases of the conformance suite, written against [`ReviewStore`] (and the
//! prediction history's label) only.

use chrono::Utc;

use crate::review::{ReviewItem, ReviewOutcome, ReviewState};
use crate::stores::Stores;
use crate::types::{ClassProbability, PageRequest, PredictionRecord};

/// A recorded prediction of version `version`, `uncertainty`, image content `content`.
fn kept(stores: &Stores, version: u32, uncertainty: f32, content: u8) -> ReviewItem {
    let record = PredictionRecord {
        id: 0,
        created_at: Utc::now(),
        model_version: version,
        predicted_class: "a".into(),
        predicted_index: 0,
        confidence: 1.0 - uncertainty / 2.0,
        probabilities: vec![ClassProbability {
            class: "a".into(),
            probability: 1.0 - uncertainty / 2.0,
        }],
        uncertainty,
        entropy: uncertainty,
        out_of_distribution: content == 0,
        novelty: Some(0.5),
        label: None,
        latency_ms: 1.0,
        image_sha256: format!("{content:064x}"),
        filename: Some(format!("{content}.jpg")),
    };
    let id = stores.predictions.record(vec![record.clone()]).unwrap()[0];
    ReviewItem::pending(&PredictionRecord { id, ..record }, 0)
}

fn bytes(content: u8) -> Vec<u8> {
    vec![content; 100]
}

fn pending_ids(stores: &Stores) -> Vec<u64> {
    let page = stores.reviews.pending(PageRequest::new(1, 100)).unwrap();
    assert_eq!(page.total as usize, page.items.len());
    page.items.iter().map(|i| i.prediction_id).collect()
}

pub fn review_queue_orders_by_uncertainty_and_pages(stores: &Stores) {
    let items: Vec<ReviewItem> = [0.2, 0.9, 0.5, 0.9]
        .iter()
        .enumerate()
        .map(|(n, &u)| kept(stores, 1, u, n as u8 + 1))
        .collect();
    for item in &items {
        let evicted = stores
            .reviews
            .keep(
                item.clone(),
                bytes(item.image_sha256.as_bytes()[63]),
                1 << 20,
            )
            .unwrap();
        assert!(evicted.is_empty());
    }
    let id = |n: usize| items[n].prediction_id;
    // Most uncertain first; of equal uncertainty, the newest first.
    assert_eq!(pending_ids(stores), [id(3), id(1), id(2), id(0)]);
    let second = stores.reviews.pending(PageRequest::new(2, 3)).unwrap();
    assert_eq!(second.total, 4);
    assert_eq!(second.items[0].prediction_id, id(0));
    // Keeping again changes nothing.
    stores
        .reviews
        .keep(items[0].clone(), bytes(1), 1 << 20)
        .unwrap();
    assert_eq!(pending_ids(stores).len(), 4);
    let stored = stores.reviews.get(id(2)).unwrap().unwrap();
    assert_eq!(stored.state, ReviewState::Pending);
    assert_eq!(stored.size_bytes, 100);
    assert_eq!(stored.uncertainty, 0.5);
    assert_eq!(stores.reviews.image(id(2)).unwrap().unwrap(), bytes(b'3'));
    assert!(stores.reviews.get(u64::MAX - 7).unwrap().is_none());
}

pub fn review_queue_keeps_an_image_once_and_settles_once(stores: &Stores) {
    // Two predictions of the same image, one of another, from two versions.
    let first = kept(stores, 1, 0.8, 7);
    let again = kept(stores, 2, 0.6, 7);
    let other = kept(stores, 2, 0.4, 8);
    stores
        .reviews
        .keep(first.clone(), bytes(7), 1 << 20)
        .unwrap();
    stores
        .reviews
        .keep(again.clone(), bytes(7), 1 << 20)
        .unwrap();
    stores
        .reviews
        .keep(other.clone(), bytes(8), 1 << 20)
        .unwrap();
    // One label answers every prediction of an image: the second is not queued.
    assert!(stores.reviews.get(again.prediction_id).unwrap().is_none());
    let summary = stores.reviews.summary().unwrap();
    assert_eq!((summary.pending, summary.kept_bytes), (2, 200));

    let labelled = ReviewOutcome::Labelled {
        class: "a".into(),
        image_id: 41,
    };
    let item = stores
        .reviews
        .settle(first.prediction_id, &labelled)
        .unwrap()
        .unwrap();
    assert_eq!(item.state, ReviewState::Labelled);
    assert_eq!(
        (item.label.as_deref(), item.image_id),
        (Some("a"), Some(41))
    );
    assert!(item.reviewed_at.is_some());
    assert!(stores.reviews.image(first.prediction_id).unwrap().is_none());
    assert_eq!(stores.reviews.summary().unwrap().kept_bytes, 100);
    // Once settled, the same image may be queued again (a later prediction of it).
    stores
        .reviews
        .keep(again.clone(), bytes(7), 1 << 20)
        .unwrap();
    assert_eq!(
        stores.reviews.image(again.prediction_id).unwrap().unwrap(),
        bytes(7)
    );

    let wrong = ReviewOutcome::Labelled {
        class: "b".into(),
        image_id: 41,
    };
    stores
        .reviews
        .settle(again.prediction_id, &wrong)
        .unwrap()
        .unwrap();
    let dismissed = stores
        .reviews
        .settle(other.prediction_id, &ReviewOutcome::Dismissed)
        .unwrap()
        .unwrap();
    assert_eq!(dismissed.state, ReviewState::Dismissed);
    // Settling again leaves the first decision.
    let unchanged = stores
        .reviews
        .settle(other.prediction_id, &labelled)
        .unwrap()
        .unwrap();
    assert_eq!(
        (unchanged.state, unchanged.label),
        (ReviewState::Dismissed, None)
    );
    assert!(stores
        .reviews
        .settle(u64::MAX - 9, &labelled)
        .unwrap()
        .is_none());

    assert!(pending_ids(stores).is_empty());
    let summary = stores.reviews.summary().unwrap();
    assert_eq!(
        (
            summary.pending,
            summary.kept_bytes,
            summary.labelled,
            summary.dismissed
        ),
        (0, 0, 2, 1)
    );
    let per_version: Vec<(u32, u64, u64)> = summary
        .accuracy
        .iter()
        .map(|a| (a.model_version, a.labelled, a.agreed))
        .collect();
    assert_eq!(per_version, [(1, 1, 1), (2, 1, 0)]);
}

pub fn review_queue_evicts_the_oldest_beyond_its_budget(stores: &Stores) {
    let items: Vec<ReviewItem> = (1..=4)
        .map(|n| kept(stores, 1, 0.1 * f32::from(n), n))
        .collect();
    let mut evicted = Vec::new();
    for (n, item) in items.iter().enumerate() {
        evicted.extend(
            stores
                .reviews
                .keep(item.clone(), bytes(n as u8 + 1), 250)
                .unwrap(),
        );
    }
    // 100 bytes each, 250 allowed: the two oldest went, whatever their uncertainty.
    assert_eq!(evicted, [items[0].prediction_id, items[1].prediction_id]);
    assert_eq!(
        pending_ids(stores),
        [items[3].prediction_id, items[2].prediction_id]
    );
    assert!(stores
        .reviews
        .get(items[0].prediction_id)
        .unwrap()
        .is_none());
    let summary = stores.reviews.summary().unwrap();
    assert_eq!((summary.kept_bytes, summary.evicted), (200, 2));
    // One image over the whole budget does not stay either.
    let big = kept(stores, 1, 0.99, 9);
    let gone = stores.reviews.keep(big.clone(), vec![9; 300], 250).unwrap();
    assert!(gone.contains(&big.prediction_id));
    assert!(stores.reviews.summary().unwrap().kept_bytes <= 250);
}

pub fn predictions_remember_their_review_label(stores: &Stores) {
    let item = kept(stores, 3, 0.5, 5);
    assert!(stores
        .predictions
        .set_label(item.prediction_id, "b")
        .unwrap());
    let page = stores.predictions.list(PageRequest::new(1, 10)).unwrap();
    let record = page
        .items
        .iter()
        .find(|p| p.id == item.prediction_id)
        .unwrap();
    assert_eq!(record.label.as_deref(), Some("b"));
    assert!(!stores.predictions.set_label(u64::MAX - 3, "b").unwrap());
}
