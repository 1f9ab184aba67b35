//! The `onnxruntime` plugin: the backbone is exported to ONNX ([`crate::onnx_export`], batch
//! norms folded) and run by ONNX Runtime; the small classifier head stays on burn's flex device,
//! where it is also trained.
//!
//! The ONNX Runtime shared library is not linked: it is loaded at run time from the path in
//! `ORT_DYLIB_PATH` (for example `libonnxruntime.so.1.32.0` from PyPI's `onnxruntime` wheel; see
//! `backends/BENCHMARKS.md`). Without it the plugin's probe fails with a message saying so.

use std::sync::{Condvar, Mutex, OnceLock};

use burn::tensor::Device;
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use crate::error::BackendError;
use crate::fine_tune::{FineTuneConfig, ImageSource};
use crate::network::{load_backbone, BackboneKind, FEATURE_DIM};
use crate::onnx_export::{export, input_tensor, self_test_model, INPUT_NAME, OUTPUT_NAME};
use crate::plugin::{
    guarded, BackendPlugin, BurnPlugin, Classifier, FeatureExtractor, HeadClassifier,
    ModelArtifact, OnnxRuntimeOptions, TrainedArtifact,
};
use crate::preprocess::{PreparedImage, INPUT_SIZE};
use crate::training::{Example, HeadTrainingConfig, TrainingObserver};

/// The environment variable naming the ONNX Runtime shared library to load.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

const NAME: &str = "onnxruntime";

/// How a loaded model's ONNX Runtime sessions run (defaults measured in
/// `loadtest/LOAD_TEST_RESULTS.md` and `backends/BENCHMARKS.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtSettings {
    /// Single-threaded sessions per loaded model, each running one forward pass at a time:
    /// under load, runs overlap one per core instead of stalling on each other's preempted
    /// threads.
    pub sessions: usize,
    /// Threads of one more session that splits a run over several cores (ONNX Runtime's
    /// intra-op pool). It is lent only while no other run is in progress, so a lone request gets
    /// every core and concurrent ones never oversubscribe them; 1 = no such session. Training's
    /// feature extraction (one caller) uses it alone.
    pub intra_threads: usize,
    /// Whether idle pool threads spin waiting for work: a little lower latency, but CPU burnt
    /// that the server's decoding threads could use.
    pub spinning: bool,
}

impl Default for OrtSettings {
    /// One single-threaded session per available core plus an all-core one; no spinning.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            sessions: cores,
            intra_threads: cores,
            spinning: false,
        }
    }
}

/// Runs the backbones with ONNX Runtime (CPU execution provider).
#[derive(Debug, Clone, Default)]
pub struct OrtPlugin {
    settings: OrtSettings,
}

impl OrtPlugin {
    /// The plugin with the default [`OrtSettings`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The plugin with explicit session settings (benchmarks compare them).
    pub fn with_settings(settings: OrtSettings) -> Self {
        Self { settings }
    }

    /// The plugin as configured; zeros keep the defaults (one per core).
    pub fn with_options(options: &OnnxRuntimeOptions) -> Self {
        let defaults = OrtSettings::default();
        let or_default = |configured: usize, default: usize| match configured {
            0 => default,
            configured => configured,
        };
        Self::with_settings(OrtSettings {
            sessions: or_default(options.sessions, defaults.sessions),
            intra_threads: or_default(options.intra_threads, defaults.intra_threads),
            ..defaults
        })
    }

    fn session(&self, model: &[u8], intra_threads: usize) -> Result<Session, BackendError> {
        let environment = environment()?;
        Session::builder(&environment)
            .map_err(session_error)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(session_error)?
            // A memory pattern is planned and kept per input shape, and dynamic batching makes
            // several shapes: without it peak memory under load is lower, and speed the same.
            .with_memory_pattern(false)
            .map_err(session_error)?
            .with_intra_threads(intra_threads)
            .map_err(session_error)?
            // The backbone is a chain of convolutions: nothing for an inter-op pool to overlap.
            .with_inter_threads(1)
            .map_err(session_error)?
            .with_intra_op_spinning(self.settings.spinning)
            .map_err(session_error)?
            .commit_from_memory(model)
            .map_err(session_error)
    }

    /// A served model's extractor: the all-core session (when `intra_threads` > 1) for lone
    /// requests, and `sessions` single-threaded ones that the server's workers share under load.
    fn serving_extractor(
        &self,
        kind: BackboneKind,
        tail: Option<(usize, &[u8])>,
    ) -> Result<OrtFeatureExtractor, BackendError> {
        let model = export_backbone(kind, tail)?;
        let all_cores = self.settings.intra_threads;
        let solo = (all_cores > 1)
            .then(|| self.session(&model, all_cores))
            .transpose()?;
        let single_threaded = (0..self.settings.sessions.max(1))
            .map(|_| self.session(&model, 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OrtFeatureExtractor {
            kind,
            sessions: Pool::new(solo, single_threaded),
        })
    }

    /// Batch feature extraction for training has one caller: one session using every core.
    fn batch_extractor(&self, kind: BackboneKind) -> Result<OrtFeatureExtractor, BackendError> {
        let model = export_backbone(kind, None)?;
        let session = self.session(&model, self.settings.intra_threads.max(1))?;
        Ok(OrtFeatureExtractor {
            kind,
            sessions: Pool::new(None, vec![session]),
        })
    }
}

/// The backbone (with a fine-tuned tail, if any) as an ONNX graph.
fn export_backbone(
    kind: BackboneKind,
    tail: Option<(usize, &[u8])>,
) -> Result<Vec<u8>, BackendError> {
    // The burn loader reads the shipped weights; flex is only the staging device here.
    Ok(export(&load_backbone(kind, tail, &Device::flex())?))
}

fn session_error(error: impl std::fmt::Display) -> BackendError {
    BackendError::Inference(format!("ONNX Runtime session: {error}"))
}

/// The process-wide ONNX Runtime environment (ONNX Runtime allows one), created on first use
/// from the library in `ORT_DYLIB_PATH`. A failure is remembered: the library cannot appear
/// later in the same process.
fn environment() -> Result<Environment, BackendError> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = std::env::var_os(DYLIB_ENV)
                .filter(|path| !path.is_empty())
                .ok_or_else(|| {
                    format!(
                        "{DYLIB_ENV} is not set; point it at libonnxruntime.so.1.x (e.g. from \
                         the PyPI `onnxruntime` wheel, see backends/BENCHMARKS.md)"
                    )
                })?;
            // Loading runs foreign initialisers; a panic inside `ort` becomes an error.
            guarded(|| {
                ort::init_from(&path)
                    .map_err(|e| e.to_string())?
                    .with_name("sprig")
                    .build()
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| e.to_string())?
        })
        .clone()
        .map_err(|reason| BackendError::Unavailable {
            name: NAME.into(),
            reason,
        })
}

impl BackendPlugin for OrtPlugin {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_accelerator(&self) -> bool {
        false
    }

    fn parallel_runs(&self) -> usize {
        self.settings.sessions.max(1)
    }

    /// Loads the library and runs a one-node model: `Clip(0, 6)` of `[-1, 2, 9]` is `[0, 2, 6]`.
    fn probe(&self) -> Result<(), BackendError> {
        let unavailable = |reason: String| BackendError::Unavailable {
            name: NAME.into(),
            reason,
        };
        environment()?;
        let values = guarded(|| -> Result<Vec<f32>, String> {
            let mut session = self
                .session(&self_test_model(), 1)
                .map_err(|e| e.to_string())?;
            let input = [-1.0f32, 2.0, 9.0];
            let tensor =
                TensorRef::from_array_view(([1usize, 3], &input[..])).map_err(|e| e.to_string())?;
            let outputs = session
                .run(ort::inputs![INPUT_NAME => tensor])
                .map_err(|e| e.to_string())?;
            let (_, values) = outputs[OUTPUT_NAME]
                .try_extract_tensor::<f32>()
                .map_err(|e| e.to_string())?;
            Ok(values.to_vec())
        })
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(|e| unavailable(format!("self-test failed: {e}")))?;
        if values != [0.0, 2.0, 6.0] {
            return Err(unavailable(format!("self-test computed {values:?}")));
        }
        Ok(())
    }

    fn feature_extractor(
        &self,
        kind: BackboneKind,
    ) -> Result<Box<dyn FeatureExtractor>, BackendError> {
        Ok(Box::new(self.batch_extractor(kind)?))
    }

    fn load(&self, artifact: &ModelArtifact) -> Result<Box<dyn Classifier>, BackendError> {
        let extractor = self.serving_extractor(artifact.backbone, artifact.tail_ref())?;
        Ok(Box::new(HeadClassifier::load(
            extractor,
            artifact,
            Device::flex(),
        )?))
    }

    /// Head training runs on cached features, so it is burn flex's job (about 1 ms a batch).
    fn train(
        &self,
        backbone: BackboneKind,
        classes: &[String],
        train: &[Example],
        validation: &[Example],
        config: &HeadTrainingConfig,
        initial_head: Option<&[u8]>,
        observer: &mut dyn TrainingObserver,
    ) -> Result<TrainedArtifact, BackendError> {
        BurnPlugin::flex().train(
            backbone,
            classes,
            train,
            validation,
            config,
            initial_head,
            observer,
        )
    }
    /// Fine-tuning needs gradients, which ONNX Runtime inference sessions do not give: flex trains.
    fn fine_tune(
        &self,
        base: &ModelArtifact,
        train: ImageSource<'_>,
        validation: ImageSource<'_>,
        config: &FineTuneConfig,
        observer: &mut dyn TrainingObserver,
    ) -> Result<TrainedArtifact, BackendError> {
        BurnPlugin::flex().fine_tune(base, train, validation, config, observer)
    }
}

/// A fixed set of items (a model's sessions), each lent to one user at a time (`ort` runs take
/// `&mut Session`). An optional solo item (the all-core session) is lent only while nothing else
/// is, or when every other item is busy.
struct Pool<T> {
    /// Indexed by item, the solo item (if any) first; `None` while lent.
    slots: Mutex<Vec<Option<T>>>,
    has_solo: bool,
    returned: Condvar,
}

impl<T> Pool<T> {
    fn new(solo: Option<T>, others: Vec<T>) -> Self {
        let has_solo = solo.is_some();
        Self {
            slots: Mutex::new(solo.into_iter().chain(others).map(Some).collect()),
            has_solo,
            returned: Condvar::new(),
        }
    }

    /// Runs `work` on an idle item, waiting when all are lent.
    fn with<R>(&self, work: impl FnOnce(&mut T) -> R) -> R {
        let (slot, item) = self.take();
        let mut lent = Lent {
            pool: self,
            slot,
            item: Some(item),
        };
        work(
            lent.item
                .as_mut()
                .expect("the item is held until the loan drops"),
        )
    }

    fn take(&self) -> (usize, T) {
        // Only whole `Option`s are swapped under this lock, so a poisoned one is still consistent.
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let alone = slots.iter().all(Option::is_some);
            // The solo item goes last in the search unless no other run is in progress.
            let first = usize::from(self.has_solo && !alone);
            let idle = (first..slots.len())
                .chain(0..first)
                .find(|&slot| slots[slot].is_some());
            if let Some(slot) = idle {
                let item = slots[slot].take().expect("the slot was just seen idle");
                return (slot, item);
            }
            slots = self.returned.wait(slots).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// An item on loan; it goes back to its slot even when the work panics.
struct Lent<'a, T> {
    pool: &'a Pool<T>,
    slot: usize,
    item: Option<T>,
}

impl<T> Drop for Lent<'_, T> {
    fn drop(&mut self) {
        let mut slots = self.pool.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots[self.slot] = self.item.take();
        self.pool.returned.notify_one();
    }
}

/// ONNX Runtime sessions for one backbone.
struct OrtFeatureExtractor {
    kind: BackboneKind,
    sessions: Pool<Session>,
}

impl FeatureExtractor for OrtFeatureExtractor {
    fn backbone(&self) -> BackboneKind {
        self.kind
    }

    fn features(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, BackendError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let input = input_tensor(self.kind, images);
        let shape = [images.len(), 3, INPUT_SIZE, INPUT_SIZE];
        let failed = |e: ort::Error| BackendError::Inference(format!("ONNX Runtime: {e}"));
        self.sessions.with(|session| {
            let outputs = session
                .run(ort::inputs![
                    INPUT_NAME => TensorRef::from_array_view((shape, &input[..])).map_err(failed)?
                ])
                .map_err(failed)?;
            let (_, values) = outputs[OUTPUT_NAME]
                .try_extract_tensor::<f32>()
                .map_err(failed)?;
            Ok(values.chunks(FEATURE_DIM).map(<[f32]>::to_vec).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    use super::*;
    use crate::preprocess::{decode, prepare, DecodeLimits};

    fn lend<T>(pool: &Pool<T>) -> Lent<'_, T> {
        let (slot, item) = pool.take();
        Lent {
            pool,
            slot,
            item: Some(item),
        }
    }

    fn name<'a>(lent: &Lent<'_, &'a str>) -> &'a str {
        lent.item.expect("lent")
    }

    #[test]
    fn the_pool_lends_the_solo_item_only_while_nothing_else_is_lent() {
        let pool = Pool::new(Some("all cores"), vec!["one core a", "one core b"]);
        let solo = lend(&pool);
        assert_eq!(name(&solo), "all cores");
        let a = lend(&pool);
        assert_eq!(name(&a), "one core a");
        drop(solo);
        // A run is still in progress, so the idle solo item is passed over.
        let b = lend(&pool);
        assert_eq!(name(&b), "one core b");
        // Every single-threaded item is busy: the solo one is used rather than waiting.
        let last_resort = lend(&pool);
        assert_eq!(name(&last_resort), "all cores");
        drop((a, b, last_resort));
        assert_eq!(pool.with(|item| *item), "all cores");
    }

    #[test]
    fn the_pool_without_a_solo_item_lends_the_first_idle_one_and_takes_it_back_after_a_panic() {
        let pool = Pool::new(None, vec!["first", "second"]);
        assert_eq!(pool.with(|item| *item), "first");
        let second = pool.with(|_| pool.with(|item| *item));
        assert_eq!(second, "second");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.with(|_| panic!("a failed run"))
        }));
        assert!(panicked.is_err());
        assert_eq!(pool.with(|item| *item), "first");
    }

    #[test]
    fn the_pool_makes_callers_wait_for_a_returned_item() {
        let pool = Pool::new(Some(0usize), vec![0usize]);
        let in_use = AtomicUsize::new(0);
        let most_in_use = AtomicUsize::new(0);
        let start = Barrier::new(4);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    start.wait();
                    for _ in 0..50 {
                        pool.with(|uses| {
                            let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                            most_in_use.fetch_max(now, Ordering::SeqCst);
                            *uses += 1;
                            std::thread::yield_now();
                            in_use.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                });
            }
        });
        assert!(most_in_use.load(Ordering::SeqCst) <= 2);
        let total: usize = pool.with(|solo| pool.with(|other| *solo + *other));
        assert_eq!(total, 200);
    }

    /// Several sessions (one multi-threaded, the rest single-threaded) running at once give the
    /// same features as one run alone.
    #[test]
    fn side_by_side_runs_agree_with_a_lone_run() {
        if std::env::var_os(DYLIB_ENV).is_none() {
            eprintln!("onnxruntime skipped: set {DYLIB_ENV} to run it");
            return;
        }
        let plugin = OrtPlugin::with_settings(OrtSettings {
            sessions: 3,
            intra_threads: 2,
            spinning: false,
        });
        assert_eq!(plugin.parallel_runs(), 3);
        let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/beans-sample/train/healthy");
        let mut files: Vec<_> = std::fs::read_dir(samples)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        let images: Vec<_> = files
            .iter()
            .take(3)
            .map(|file| {
                let bytes = std::fs::read(file).unwrap();
                prepare(&decode(&bytes, &DecodeLimits::default()).unwrap().rgb)
            })
            .collect();
        let extractor = plugin
            .serving_extractor(BackboneKind::MobilenetV2, None)
            .unwrap();
        let alone = extractor.features(&images).unwrap();
        let start = Barrier::new(4);
        let side_by_side: Vec<_> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        (0..3)
                            .map(|_| extractor.features(&images).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            runs.into_iter()
                .flat_map(|run| run.join().unwrap())
                .collect()
        });
        for features in side_by_side {
            let difference = features
                .iter()
                .flatten()
                .zip(alone.iter().flatten())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(difference <= 1e-5, "features differ by {difference}");
        }
    }

    /// With `ORT_DYLIB_PATH` set the library must load and run the self-test; without it the
    /// error must say what to set (the numeric checks live in `tests/imagenet_port.rs`).
    #[test]
    fn probe_runs_the_self_test_or_names_the_variable() {
        match (std::env::var_os(DYLIB_ENV), OrtPlugin::new().probe()) {
            (Some(_), result) => result.unwrap(),
            (None, Err(BackendError::Unavailable { name, reason })) => {
                assert_eq!(name, NAME);
                assert!(reason.contains(DYLIB_ENV), "{reason}");
                eprintln!("onnxruntime skipped: set {DYLIB_ENV} to run it");
            }
            (None, Ok(())) => panic!("probe passed without {DYLIB_ENV}"),
            (None, Err(other)) => panic!("unexpected error {other}"),
        }
    }
}
