//! Other replicas' changes, from `LISTEN sprig_changes`, onto the in-process broadcast.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::broadcast;

use crate::changes::Change;

/// The channel every replica listens on; payloads are `model:<version>` and `job:<id>`.
pub(super) const CHANGES_CHANNEL: &str = "sprig_changes";

/// Listens until the process ends. Notifications sent while the connection was down are lost, so
/// after every (re)connection subscribers are told to re-read ([`Change::Resync`]).
pub(super) async fn forward_changes(pool: PgPool, changes: broadcast::Sender<Change>) {
    loop {
        let error = match listen(&pool, &changes).await {
            Ok(()) => "the connection closed".to_string(),
            Err(error) => error.to_string(),
        };
        tracing::warn!(%error, "lost the PostgreSQL change notifications; reconnecting");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Forwards notifications until the connection drops.
async fn listen(pool: &PgPool, changes: &broadcast::Sender<Change>) -> sqlx::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    let _ = changes.send(Change::Resync);
    // `None`: the connection dropped; a new listener re-reads once it is back.
    while let Some(notification) = listener.try_recv().await? {
        if let Some(change) = parse(notification.payload()) {
            let _ = changes.send(change);
        }
    }
    Ok(())
}

fn parse(payload: &str) -> Option<Change> {
    let (kind, value) = payload.split_once(':')?;
    match kind {
        "model" => value.parse().ok().map(Change::ActiveModel),
        "job" => value.parse().ok().map(Change::Job),
        _ => None,
    }
}

/// The payload announcing a change (sent with `pg_notify` inside the changing transaction, so
/// it is delivered only if the change commits).
pub(super) fn payload(change: &Change) -> String {
    match change {
        Change::ActiveModel(version) => format!("model:{version}"),
        Change::Job(id) => format!("job:{id}"),
        Change::Resync => "resync:".into(),
    }
}
