//! Rollouts as users see them: start a shadow or a canary of a version, read its live figures,
//! stop it; and the sync that adds this process's figures to the store, follows rollouts other
//! replicas started or ended, and applies the policy. (Routing and shadow runs live in
//! [`crate::rollout`].)

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sprig_store::{
    NewRollout, PageRequest, ReviewState, RolloutMode, RolloutRecord, RolloutState, Verdict,
};

use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::rollout::policy::{Judgement, ReviewedAccuracy, RolloutConfig};

/// A rollout with what is known about it now.
#[derive(Debug, Clone)]
pub struct RolloutView {
    pub record: RolloutRecord,
    pub reviewed: ReviewedAccuracy,
    pub policy: RolloutConfig,
}

impl Engine {
    /// Starts a shadow (`share`: the sample of requests, 0–1] or a canary (`share`: the part of
    /// requests it answers, 0.01–0.5) of `version` against the active version.
    pub async fn start_rollout(
        self: &Arc<Self>,
        version: u32,
        mode: RolloutMode,
        share: f64,
    ) -> Result<RolloutView> {
        let fits = match mode {
            RolloutMode::Shadow => share > 0.0 && share <= 1.0,
            RolloutMode::Canary => (0.01..=0.5).contains(&share),
        };
        if !fits {
            return Err(CoreError::InvalidRequest(
                "a shadow samples more than 0 and at most 1 of requests; a canary answers 1 to 50 %"
                    .into(),
            ));
        }
        let baseline = self.serving_version().ok_or(CoreError::NoActiveModel)?;
        if version == baseline {
            return Err(CoreError::RolloutConflict(format!(
                "version {version} is the active version; roll out another version against it"
            )));
        }
        self.off_runtime(move |engine| {
            engine.model_version(version)?;
            let since_prediction = engine
                .stores
                .predictions
                .list(PageRequest::new(1, 1))?
                .items
                .first()
                .map_or(0, |p| p.id);
            let record = engine.rollouts.store().start(NewRollout {
                version,
                mode,
                share,
                baseline,
                since_prediction,
            })?;
            if let Err(error) = engine.rollouts.serve(record.clone()) {
                engine.end_rollout(
                    &record,
                    RolloutState::Stopped,
                    vec![format!("the candidate could not be loaded: {error}")],
                )?;
                return Err(error);
            }
            engine.rollout_view(record)
        })
        .await
    }

    /// Stops the running rollout of `version` in `mode` (a person's decision: the active version
    /// stays, no verdict goes to the activation log).
    pub async fn stop_rollout(
        self: &Arc<Self>,
        version: u32,
        mode: RolloutMode,
    ) -> Result<RolloutView> {
        self.off_runtime(move |engine| {
            let running = engine
                .rollouts
                .store()
                .running()?
                .filter(|r| r.version == version && r.mode == mode)
                .ok_or_else(|| CoreError::not_found(mode_name(mode), version))?;
            let ended = engine
                .end_rollout(
                    &running,
                    RolloutState::Stopped,
                    vec!["stopped by a person".into()],
                )?
                .unwrap_or(running);
            engine.rollout_view(ended)
        })
        .await
    }

    /// The latest rollout of `version` in `mode`, with every process's figures.
    pub async fn rollout_of(
        self: &Arc<Self>,
        version: u32,
        mode: RolloutMode,
    ) -> Result<RolloutView> {
        self.off_runtime(move |engine| {
            engine.rollouts.flush()?;
            let record = engine
                .rollouts
                .store()
                .list()?
                .into_iter()
                .find(|r| r.version == version && r.mode == mode)
                .ok_or_else(|| CoreError::not_found(mode_name(mode), version))?;
            engine.rollout_view(record)
        })
        .await
    }

    /// Every rollout, newest first.
    pub async fn rollouts(self: &Arc<Self>) -> Result<Vec<RolloutView>> {
        self.off_runtime(|engine| {
            engine.rollouts.flush()?;
            let records = engine.rollouts.store().list()?;
            records
                .into_iter()
                .map(|r| engine.rollout_view(r))
                .collect()
        })
        .await
    }

    /// At start-up: serves the rollout the store says is running (it survives restarts).
    pub fn resume_rollout(&self) -> Result<Option<u64>> {
        let Some(record) = self.rollouts.store().running()? else {
            return Ok(None);
        };
        let id = record.id;
        self.rollouts.serve(record)?;
        Ok(Some(id))
    }

    /// Syncs rollouts every `rollout.sync_secs` until the process ends.
    pub async fn follow_rollouts(self: Arc<Self>) {
        let period = Duration::from_secs(self.rollouts.config().sync_secs.max(1));
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            let engine = self.clone();
            match tokio::task::spawn_blocking(move || engine.sync_rollouts()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "rollout sync failed; retrying"),
                Err(_) => tracing::error!("rollout sync panicked"),
            }
        }
    }

    /// Adds this process's figures to the store; picks up a rollout another process started, or
    /// lets go of one that ended; applies the policy to the totals (blocking).
    pub fn sync_rollouts(&self) -> Result<()> {
        if self.serving_version().is_none() {
            return Ok(()); // starting: nothing to measure against yet
        }
        let Some(record) = self.rollouts.flush()? else {
            if let Some(record) = self.rollouts.store().running()? {
                self.rollouts.serve(record)?;
            }
            return Ok(());
        };
        if record.state != RolloutState::Running {
            self.let_go_of_rollout()?;
            return Ok(());
        }
        let active = self.serving_version();
        if active != Some(record.baseline) {
            let reason = format!(
                "the active version changed from {} to {} during the rollout",
                record.baseline,
                active.map_or("none".into(), |v| v.to_string())
            );
            self.end_rollout(&record, RolloutState::Stopped, vec![reason])?;
            return Ok(());
        }
        let reviewed = self.reviewed_accuracy(&record)?;
        let (state, reasons) =
            match self
                .rollouts
                .config()
                .judge(record.mode, &record.figures, &reviewed)
            {
                Judgement::Continue => return Ok(()),
                Judgement::Promote(reasons) => (RolloutState::Promoted, reasons),
                Judgement::RollBack(reasons) => (RolloutState::RolledBack, reasons),
            };
        let Some(ended) = self.end_rollout(&record, state, reasons.clone())? else {
            return Ok(()); // another replica recorded its verdict first
        };
        let summary = verdict_summary(&ended, &reasons);
        tracing::info!(rollout = ended.id, version = ended.version, "{summary}");
        if state == RolloutState::Promoted {
            self.registry.activate(ended.version, &summary)?;
            crate::memory::release_freed_memory();
        } else {
            self.registry.record_kept(ended.baseline, &summary)?;
        }
        Ok(())
    }

    /// Ends `record` in `state` (if it still runs) and stops serving it here; figures gathered
    /// meanwhile still reach the store. `None` when another process ended it first.
    fn end_rollout(
        &self,
        record: &RolloutRecord,
        state: RolloutState,
        reasons: Vec<String>,
    ) -> Result<Option<RolloutRecord>> {
        let verdict = Verdict {
            at: Utc::now(),
            reasons,
        };
        let ended = self.rollouts.store().finish(record.id, state, verdict)?;
        self.let_go_of_rollout()?;
        Ok(match ended {
            Some(_) => self.rollouts.store().get(record.id)?,
            None => None,
        })
    }

    fn let_go_of_rollout(&self) -> Result<()> {
        if let Some((id, figures)) = self.rollouts.forget() {
            if !figures.is_empty() {
                self.rollouts.store().add_figures(id, &figures)?;
            }
        }
        Ok(())
    }

    /// Both versions' accuracy on reviewed predictions of the rollout: in a shadow, the
    /// predictions whose candidate answer was kept; in a canary, those made since it started.
    fn reviewed_accuracy(&self, record: &RolloutRecord) -> Result<ReviewedAccuracy> {
        let mut reviewed = ReviewedAccuracy::default();
        match record.mode {
            RolloutMode::Shadow => {
                for (id, class) in &record.figures.reviewed_answers {
                    let Some(item) = self.stores.reviews.get(*id)? else {
                        continue;
                    };
                    if let (ReviewState::Labelled, Some(label)) = (item.state, &item.label) {
                        reviewed.baseline.add(&item.predicted_class == label);
                        reviewed.candidate.add(class == label);
                    }
                }
            }
            RolloutMode::Canary => {
                for item in self.stores.reviews.items()? {
                    let (ReviewState::Labelled, Some(label)) = (item.state, &item.label) else {
                        continue;
                    };
                    if item.prediction_id <= record.since_prediction {
                        continue;
                    }
                    let correct = &item.predicted_class == label;
                    if item.model_version == record.baseline {
                        reviewed.baseline.add(correct);
                    } else if item.model_version == record.version {
                        reviewed.candidate.add(correct);
                    }
                }
            }
        }
        Ok(reviewed)
    }

    fn rollout_view(&self, record: RolloutRecord) -> Result<RolloutView> {
        Ok(RolloutView {
            reviewed: self.reviewed_accuracy(&record)?,
            record,
            policy: self.rollouts.config().clone(),
        })
    }

    async fn off_runtime<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Engine) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || work(&engine))
            .await
            .map_err(|_| CoreError::ShuttingDown)?
    }
}

fn mode_name(mode: RolloutMode) -> &'static str {
    match mode {
        RolloutMode::Shadow => "running shadow of version",
        RolloutMode::Canary => "running canary of version",
    }
}

/// The activation log's line for a verdict.
fn verdict_summary(record: &RolloutRecord, reasons: &[String]) -> String {
    let (mode, share) = match record.mode {
        RolloutMode::Shadow => ("shadow", format!("sample {}", record.share)),
        RolloutMode::Canary => ("canary", format!("{} %", (record.share * 100.0).round())),
    };
    let outcome = match record.state {
        RolloutState::Promoted => format!("promoted version {}", record.version),
        _ => format!(
            "rolled back version {}; version {} stays",
            record.version, record.baseline
        ),
    };
    format!(
        "rollout {} ({mode} of version {}, {share}): {outcome} after {} requests: {}",
        record.id,
        record.version,
        record.figures.candidate.requests,
        reasons.join("; ")
    )
}
