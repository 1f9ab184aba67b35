//! What the plugins that run sprig's exported backbone graph in a foreign runtime share (ONNX
//! Runtime, OpenVINO): the backbone is exported to ONNX ([`crate::onnx_export`], batch norms
//! folded) and compiled by the runtime into *runners*, each running one forward pass at a time;
//! the small classifier head stays on burn's flex device, where it is also trained, and so does
//! fine-tuning, which needs gradients that inference runtimes do not give.

use std::sync::{Condvar, Mutex};

use burn::tensor::Device;

use crate::artifact::{ModelArtifact, TrainedArtifact};
use crate::burn_plugin::BurnPlugin;
use crate::error::BackendError;
use crate::fine_tune::{FineTuneConfig, LabelledImages};
use crate::network::{load_backbone, BackboneKind, FeatureSpec, Int8Grid};
use crate::onnx_export::{export, input_tensor, self_test_model};
use crate::plugin::{self_test, BackendPlugin, Classifier, FeatureExtractor, HeadClassifier};
use crate::preprocess::{PreparedImage, INPUT_SIZE};
use crate::runtimes::{selected, Runtime};
use crate::training::{Example, HeadTrainingConfig, TrainingObserver};

/// The runners serving one model.
pub(crate) struct ServingRunners<T> {
    /// Uses every core; lent only while no other run is in progress.
    pub(crate) solo: Option<T>,
    /// Single-threaded, shared under load.
    pub(crate) shared: Vec<T>,
}

/// A runtime that runs the exported backbone graph; every such runtime is a [`BackendPlugin`].
pub(crate) trait GraphRuntime: Send + Sync + 'static {
    /// One compiled copy of a graph, running one forward pass at a time.
    type Runner: Send;
    /// The plugin's name.
    const NAME: &'static str;
    /// Loads the runtime's library (once per process) or says why it cannot be.
    fn load_library(&self) -> Result<(), String>;
    /// Forward passes worth running side by side (runners shared under load).
    fn concurrent_runs(&self) -> usize;
    /// The number format the backbone computes in (for a backbone without an INT8 grid, when the
    /// runtime asks for int8: [`Self::float_precision`]).
    fn precision(&self) -> &'static str;
    /// The float format a graph without QDQ nodes computes in.
    fn float_precision(&self) -> &'static str {
        self.precision()
    }
    /// The INT8 grid to write `kind`'s shipped graph on, when this runtime computes in int8. A
    /// fine-tuned tail's weights have left the grid the QAT model was trained on (measured: its
    /// answers move 5× as far from float32's as bfloat16's do), so fine-tuned versions run in
    /// [`Self::float_precision`].
    fn int8_grid(&self, _kind: BackboneKind) -> Option<&'static Int8Grid> {
        None
    }
    /// Runners serving one model: an optional solo runner and [`Self::concurrent_runs`] shared
    /// ones.
    fn serving_runners(&self, graph: &[u8]) -> Result<ServingRunners<Self::Runner>, String>;
    /// One runner for batch feature extraction: one caller, every core.
    fn batch_runner(&self, graph: &[u8]) -> Result<Self::Runner, String>;
    /// One forward pass of `input` (of `shape`): the output's values.
    fn run(runner: &mut Self::Runner, input: &[f32], shape: &[usize]) -> Result<Vec<f32>, String>;
}

impl<R: GraphRuntime> BackendPlugin for R {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn is_accelerator(&self) -> bool {
        false
    }

    fn precision(&self) -> &'static str {
        GraphRuntime::precision(self)
    }

    fn precision_for(&self, kind: BackboneKind, fine_tuned: bool) -> &'static str {
        match self.int8_grid(kind) {
            Some(_) if !fine_tuned => GraphRuntime::precision(self),
            _ => self.float_precision(),
        }
    }

    fn parallel_runs(&self) -> usize {
        self.concurrent_runs().max(1)
    }

    /// Loads the library and runs a one-node model: `Clip(0, 6)` of `[-1, 2, 9]` is `[0, 2, 6]`.
    fn probe(&self) -> Result<(), BackendError> {
        self.load_library()
            .map_err(|reason| BackendError::Unavailable {
                name: R::NAME.into(),
                reason,
            })?;
        // Loading and compiling run foreign code; a panic in the bindings becomes an error.
        self_test(R::NAME, [0.0, 2.0, 6.0], || {
            let mut runner = self.batch_runner(&self_test_model())?;
            R::run(&mut runner, &[-1.0, 2.0, 9.0], &[1, 3])
        })
    }

    fn feature_extractor(
        &self,
        spec: FeatureSpec,
    ) -> Result<Box<dyn FeatureExtractor>, BackendError> {
        Ok(Box::new(GraphFeatureExtractor::for_batches(self, spec)?))
    }

    fn load(&self, artifact: &ModelArtifact) -> Result<Box<dyn Classifier>, BackendError> {
        let extractor =
            GraphFeatureExtractor::for_serving(self, artifact.spec(), artifact.tail_ref())?;
        Ok(Box::new(HeadClassifier::load(
            extractor,
            artifact,
            Device::flex(),
        )?))
    }

    /// Head training runs on cached features, so it is burn flex's job (about 1 ms a batch).
    fn train(
        &self,
        features: FeatureSpec,
        classes: &[String],
        train: &[Example],
        validation: &[Example],
        config: &HeadTrainingConfig,
        initial_head: Option<&[u8]>,
        observer: &mut dyn TrainingObserver,
    ) -> Result<TrainedArtifact, BackendError> {
        BurnPlugin::flex().train(
            features,
            classes,
            train,
            validation,
            config,
            initial_head,
            observer,
        )
    }

    fn fine_tune(
        &self,
        base: &ModelArtifact,
        train: LabelledImages<'_>,
        validation: LabelledImages<'_>,
        config: &FineTuneConfig,
        observer: &mut dyn TrainingObserver,
    ) -> Result<TrainedArtifact, BackendError> {
        BurnPlugin::flex().fine_tune(base, train, validation, config, observer)
    }
}

/// The path of `runtime`'s library as discovered ([`crate::runtimes`]), or where it was looked
/// for and how to get it.
pub(crate) fn library_path(runtime: Runtime) -> Result<std::path::PathBuf, String> {
    selected(runtime).map(|found| found.path).map_err(|misses| {
        format!(
            "{misses}; run `sprig runtimes fetch`, or point {} at the library",
            runtime.dylib_env()
        )
    })
}

/// The backbone (with a fine-tuned tail, if any) as the ONNX graph of `spec`'s features that
/// `runtime` runs.
pub(crate) fn export_backbone<R: GraphRuntime>(
    runtime: &R,
    spec: FeatureSpec,
    tail: Option<(usize, &[u8])>,
) -> Result<Vec<u8>, BackendError> {
    // The burn loader reads the shipped weights; flex is only the staging device here.
    let backbone = load_backbone(spec.backbone, tail, &Device::flex())?;
    let grid = runtime.int8_grid(spec.backbone).filter(|_| tail.is_none());
    Ok(export(&backbone, spec.pooling, grid))
}

/// A runtime's runners for one backbone.
pub(crate) struct GraphFeatureExtractor<R: GraphRuntime> {
    spec: FeatureSpec,
    runners: Pool<R::Runner>,
}

impl<R: GraphRuntime> GraphFeatureExtractor<R> {
    /// A served model's extractor (see [`GraphRuntime::serving_runners`]).
    pub(crate) fn for_serving(
        runtime: &R,
        spec: FeatureSpec,
        tail: Option<(usize, &[u8])>,
    ) -> Result<Self, BackendError> {
        runtime.load_library().map_err(runtime_error::<R>)?;
        let ServingRunners { solo, shared } = runtime
            .serving_runners(&export_backbone(runtime, spec, tail)?)
            .map_err(runtime_error::<R>)?;
        Ok(Self {
            spec,
            runners: Pool::new(solo, shared),
        })
    }

    /// Batch feature extraction for training has one caller: one runner using every core.
    fn for_batches(runtime: &R, spec: FeatureSpec) -> Result<Self, BackendError> {
        runtime.load_library().map_err(runtime_error::<R>)?;
        let runner = runtime
            .batch_runner(&export_backbone(runtime, spec, None)?)
            .map_err(runtime_error::<R>)?;
        Ok(Self {
            spec,
            runners: Pool::new(None, vec![runner]),
        })
    }
}

fn runtime_error<R: GraphRuntime>(reason: String) -> BackendError {
    BackendError::Inference(format!("{}: {reason}", R::NAME))
}

impl<R: GraphRuntime> FeatureExtractor for GraphFeatureExtractor<R> {
    fn spec(&self) -> FeatureSpec {
        self.spec
    }

    fn features(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, BackendError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let input = input_tensor(self.spec.backbone, images);
        let shape = [images.len(), 3, INPUT_SIZE, INPUT_SIZE];
        let values = self
            .runners
            .with(|runner| R::run(runner, &input, &shape))
            .map_err(runtime_error::<R>)?;
        let width = self.spec.dim();
        if values.len() != images.len() * width {
            return Err(runtime_error::<R>(format!(
                "{} values for {} images",
                values.len(),
                images.len()
            )));
        }
        Ok(values.chunks(width).map(<[f32]>::to_vec).collect())
    }
}

/// A fixed set of items (a model's runners), each lent to one user at a time (runtimes run one
/// forward pass at a time on each). An optional solo item (the all-core runner) is lent only while nothing else
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

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    use super::*;
    use crate::preprocess::{decode, prepare, DecodeLimits};

    /// Runs on every runner of a served model at once (more threads than runners) give the
    /// features of one run alone, exactly: a runner's result must not depend on its neighbours.
    /// Skipped with a message unless the runtime's library is found here.
    pub(crate) fn assert_side_by_side_runs_agree_with_a_lone_run<R: GraphRuntime>(
        runtime: &R,
        library: Runtime,
    ) {
        if let Err(misses) = selected(library) {
            let test = format!("{} runs side by side", R::NAME);
            crate::test_skip::skip(&test, &misses);
            return;
        }
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
        let extractor = GraphFeatureExtractor::for_serving(
            runtime,
            FeatureSpec::final_map(BackboneKind::MobilenetV2),
            None,
        )
        .unwrap();
        let alone = extractor.features(&images).unwrap();
        let threads = runtime.concurrent_runs() + 1;
        let start = Barrier::new(threads);
        let side_by_side: Vec<_> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..threads)
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
            assert!(
                difference <= 1e-5,
                "{}: features differ by {difference}",
                R::NAME
            );
        }
    }

    /// With `variable` set the library must load and pass the self-test; without it the error
    /// must name the variable (the numeric checks live in `tests/imagenet_port.rs`).
    pub(crate) fn assert_probe_runs_the_self_test_or_names<R: GraphRuntime>(
        runtime: &R,
        library: Runtime,
    ) {
        let variable = library.dylib_env();
        match (selected(library), runtime.probe()) {
            (Ok(_), result) => result.unwrap(),
            (Err(_), Err(BackendError::Unavailable { name, reason })) => {
                assert_eq!(name, R::NAME);
                assert!(reason.contains(variable), "{reason}");
                assert!(reason.contains("sprig runtimes fetch"), "{reason}");
                crate::test_skip::skip(&format!("{} probe", R::NAME), &reason);
            }
            (Err(_), Ok(())) => panic!("{} probe passed without its library", R::NAME),
            (Err(_), Err(other)) => panic!("unexpected error {other}"),
        }
    }

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
}
