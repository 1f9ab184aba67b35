//! The `onnxruntime` plugin: the exported backbone graph run by ONNX Runtime's CPU execution
//! provider in float32 (what it shares with other graph runtimes: [`crate::graph_runtime`]).
//!
//! The ONNX Runtime shared library is not linked: it is loaded at run time from where
//! [`crate::runtimes`] finds it (`libonnxruntime.so.1.32.0` of PyPI's `onnxruntime` wheel). Without it the plugin's probe fails with a message saying so.

use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use super::options::OnnxRuntimeOptions;
use crate::error::guarded;
use crate::graph_runtime::{library_path, GraphRuntime, ServingRunners};
use crate::onnx_export::INPUT_NAME;
use crate::runtimes::Runtime;

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

    fn session(&self, graph: &[u8], intra_threads: usize) -> Result<Session, String> {
        let environment = environment()?;
        fn error(e: impl std::fmt::Display) -> String {
            format!("ONNX Runtime session: {e}")
        }
        Session::builder(&environment)
            .map_err(error)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(error)?
            // A memory pattern is planned and kept per input shape, and dynamic batching makes
            // several shapes: without it peak memory under load is lower, and speed the same.
            .with_memory_pattern(false)
            .map_err(error)?
            .with_intra_threads(intra_threads)
            .map_err(error)?
            // The backbone is a chain of convolutions: nothing for an inter-op pool to overlap.
            .with_inter_threads(1)
            .map_err(error)?
            .with_intra_op_spinning(self.settings.spinning)
            .map_err(error)?
            .commit_from_memory(graph)
            .map_err(error)
    }
}

/// The process-wide ONNX Runtime environment (ONNX Runtime allows one), created on first use
/// from the library [`crate::runtimes`] finds. A failure is remembered: the library cannot appear
/// later in the same process.
fn environment() -> Result<Environment, String> {
    static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = library_path(Runtime::OnnxRuntime)?;
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
}

impl GraphRuntime for OrtPlugin {
    /// One ONNX Runtime session.
    type Runner = Session;
    const NAME: &'static str = NAME;

    fn load_library(&self) -> Result<(), String> {
        environment().map(drop)
    }

    fn concurrent_runs(&self) -> usize {
        self.settings.sessions
    }

    fn precision(&self) -> &'static str {
        "f32"
    }

    /// The all-core session (when `intra_threads` > 1) for lone requests, and `sessions`
    /// single-threaded ones that the server's workers share under load.
    fn serving_runners(&self, graph: &[u8]) -> Result<ServingRunners<Session>, String> {
        let all_cores = self.settings.intra_threads;
        let solo = (all_cores > 1)
            .then(|| self.session(graph, all_cores))
            .transpose()?;
        let single_threaded = (0..self.settings.sessions.max(1))
            .map(|_| self.session(graph, 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServingRunners {
            solo,
            shared: single_threaded,
        })
    }

    fn batch_runner(&self, graph: &[u8]) -> Result<Session, String> {
        self.session(graph, self.settings.intra_threads.max(1))
    }

    fn run(session: &mut Session, input: &[f32], shape: &[usize]) -> Result<Vec<f32>, String> {
        let failed = |e: ort::Error| format!("ONNX Runtime: {e}");
        let outputs = session
            .run(ort::inputs![
                INPUT_NAME => TensorRef::from_array_view((shape, input)).map_err(failed)?
            ])
            .map_err(failed)?;
        // The backbone's `features`, or a whole exported classifier's `probabilities`.
        let (_, values) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        Ok(values.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph_runtime::tests::{
        assert_probe_runs_the_self_test_or_names, assert_side_by_side_runs_agree_with_a_lone_run,
    };
    use crate::plugin::BackendPlugin;

    /// Several sessions (one multi-threaded, the rest single-threaded) running at once give the
    /// same features as one run alone.
    #[test]
    fn side_by_side_runs_agree_with_a_lone_run() {
        let plugin = OrtPlugin::with_settings(OrtSettings {
            sessions: 3,
            intra_threads: 2,
            spinning: false,
        });
        assert_eq!(plugin.parallel_runs(), 3);
        assert_side_by_side_runs_agree_with_a_lone_run(&plugin, Runtime::OnnxRuntime);
    }

    /// With its library found the runtime must load and run the self-test; without it the
    /// error must say what to set (the numeric checks live in `tests/imagenet_port.rs`).
    #[test]
    fn probe_runs_the_self_test_or_names_the_variable() {
        assert_probe_runs_the_self_test_or_names(&OrtPlugin::new(), Runtime::OnnxRuntime);
    }
}
