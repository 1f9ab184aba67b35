//! Explanations of answers: a Grad-CAM heatmap of the class a version predicted
//! ([`sprig_backends::explain`]), computed on flex whichever plugin serves. Only requests that
//! ask for one pay for it: the prediction itself goes through the batcher as any other, and
//! explanations run one at a time after it, outside the inference workers, on a thread pool of
//! their own at the lowest CPU priority (nice 19, Linux): when the cores are busy with
//! predictions, explanations wait rather than slow them.

use std::sync::Arc;
use std::time::Instant;

use sprig_backends::explain::{overlay_png, Explainer};
use sprig_backends::{decode, prepare, ModelArtifact, PreparedImage};
use sprig_store::PredictionRecord;

use crate::engine::Engine;
use crate::error::{CoreError, Result};

/// The explanation of one answer.
#[derive(Debug, Clone)]
pub struct ExplanationView {
    /// The class explained (the predicted one).
    pub class: String,
    /// Side of the square map (7 for the 224×224 input).
    pub side: u32,
    /// `side × side` row-major values in [0, 1]: where the evidence for `class` lies.
    pub map: Vec<f32>,
    /// The 224×224 network input with the map laid over it (PNG).
    pub overlay_png: Vec<u8>,
    /// Time the explanation took (loading the version's explainer included, the first time).
    pub millis: f64,
}

impl Engine {
    /// Predicts one image, as [`Engine::predict`], and explains the answer.
    pub async fn predict_explained(
        &self,
        bytes: Vec<u8>,
        filename: Option<String>,
        client: Option<&str>,
    ) -> Result<(PredictionRecord, ExplanationView)> {
        let record = self.predict(bytes.clone(), filename, client).await?;
        let explanation = self
            .explain(record.model_version, &record.predicted_class, bytes)
            .await?;
        Ok((record, explanation))
    }

    /// Predicts many images, as [`Engine::predict_many`], and explains each answer.
    pub async fn predict_many_explained(
        &self,
        files: Vec<(Option<String>, Result<Vec<u8>>)>,
        client: Option<&str>,
    ) -> Vec<Result<(PredictionRecord, ExplanationView)>> {
        let kept: Vec<Option<Vec<u8>>> = files
            .iter()
            .map(|(_, bytes)| bytes.as_ref().ok().cloned())
            .collect();
        let outcomes = self.predict_many(files, client).await;
        let mut explained = Vec::with_capacity(outcomes.len());
        for (outcome, bytes) in outcomes.into_iter().zip(kept) {
            explained.push(match (outcome, bytes) {
                (Ok(record), Some(bytes)) => self
                    .explain(record.model_version, &record.predicted_class, bytes)
                    .await
                    .map(|explanation| (record, explanation)),
                (Ok(_), None) => unreachable!("an answered image had bytes"),
                (Err(error), _) => Err(error),
            });
        }
        explained
    }

    /// The explanation of a prediction whose image is kept for review, as PNG.
    pub async fn prediction_explanation(&self, prediction_id: u64) -> Result<Vec<u8>> {
        let item = self
            .review
            .item(prediction_id)?
            .ok_or_else(|| CoreError::not_found("kept prediction", prediction_id))?;
        let bytes = self.prediction_image(prediction_id)?;
        let explanation = self
            .explain(item.model_version, &item.predicted_class, bytes)
            .await?;
        Ok(explanation.overlay_png)
    }

    /// Explains `class` for the image `bytes` with `version` (the one that answered).
    async fn explain(&self, version: u32, class: &str, bytes: Vec<u8>) -> Result<ExplanationView> {
        let _permit = self
            .explanations
            .permit
            .acquire()
            .await
            .map_err(|_| CoreError::ShuttingDown)?;
        let started = Instant::now();
        let (explainer, classes) = self.explainer(version).await?;
        let limits = self.config().ingest.decode_limits();
        let index = classes
            .iter()
            .position(|c| c == class)
            .ok_or_else(|| CoreError::not_found("class of the version", class))?;
        let (map, side, overlay_png) = self
            .explanations
            .run(move || {
                let image: PreparedImage = prepare(&decode(&bytes, &limits)?.rgb);
                let explanation = explainer.explain(&image, index)?;
                let png = overlay_png(&image, &explanation);
                Ok::<_, CoreError>((explanation.map, explanation.side, png))
            })
            .await??;
        Ok(ExplanationView {
            class: class.to_string(),
            side: side as u32,
            map,
            overlay_png,
            millis: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// The explainer of `version` (and its classes), loaded once and kept while it is the one
    /// explained.
    async fn explainer(&self, version: u32) -> Result<(Arc<Explainer>, Vec<String>)> {
        if let Some((cached, explainer)) = &*self.explanations.explainer.lock().unwrap() {
            if *cached == version {
                let classes = self.model_version(version)?.0.classes;
                return Ok((explainer.clone(), classes));
            }
        }
        let artifact = ModelArtifact::from_bytes(&self.model_file(version)?)?;
        let classes = artifact.classes.clone();
        let explainer = self
            .explanations
            .run(move || Explainer::new(&artifact))
            .await??;
        let explainer = Arc::new(explainer);
        *self.explanations.explainer.lock().unwrap() = Some((version, explainer.clone()));
        Ok((explainer, classes))
    }
}
