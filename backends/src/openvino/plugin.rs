//! The `openvino` plugin: the exported backbone graph run by OpenVINO's CPU plugin, in bfloat16
//! on CPUs that compute it natively (AVX-512 BF16 or AMX), else in float32. bfloat16 keeps
//! float32's range with 8 bits of mantissa; on the beans photos it classifies as float32 does
//! (`backends/BENCHMARKS.md`, `bench-tools/bf16_check.py`) at about 1.6× ONNX Runtime's
//! float32 throughput on the same cores.
//!
//! The OpenVINO C library is not linked: it is loaded at run time from where
//! [`crate::runtimes`] finds it (`libopenvino_c.so.*` of PyPI's `openvino` wheel, whose CPU
//! plugin sits beside it). Without it the plugin's probe fails with a message saying so.

use std::sync::OnceLock;

use super::options::{OpenVinoOptions, OpenVinoPrecision};
use crate::error::guarded;
use crate::graph_runtime::{library_path, GraphRuntime, ServingRunners};
use crate::network::{int8_grid, BackboneKind, Int8Grid};
use crate::runtimes::Runtime;
use openvino::{
    CompiledModel, Core, DeviceType, ElementType, InferRequest, PropertyKey, RwPropertyKey, Shape,
    Tensor,
};

const NAME: &str = "openvino";

/// Runs the backbones with OpenVINO's CPU plugin.
#[derive(Debug, Clone)]
pub struct OpenVinoPlugin {
    streams: usize,
    intra_threads: usize,
    precision: OpenVinoPrecision,
}

impl Default for OpenVinoPlugin {
    fn default() -> Self {
        Self::with_options(&OpenVinoOptions::default())
    }
}

impl OpenVinoPlugin {
    /// The plugin as configured; zeros mean one per available core.
    pub fn with_options(options: &OpenVinoOptions) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let or_cores = |configured: usize| if configured == 0 { cores } else { configured };
        Self {
            streams: or_cores(options.streams),
            intra_threads: or_cores(options.intra_threads),
            precision: options.precision,
        }
    }

    /// True when this plugin computes in bfloat16 here (loads the library to ask the CPU).
    pub fn runs_bf16(&self) -> Result<bool, String> {
        Ok(self.inference_precision()? == "bf16")
    }

    /// True when graphs with an INT8 grid run in int8: asked for, or `auto` on a CPU with int8
    /// dot-product instructions.
    pub fn runs_int8(&self) -> bool {
        match self.precision {
            OpenVinoPrecision::Int8 => true,
            OpenVinoPrecision::Auto => crate::runtimes::cpu_has_int8_dot_product(),
            OpenVinoPrecision::Bf16 | OpenVinoPrecision::F32 => false,
        }
    }

    /// OpenVINO's name of the float precision this plugin asks for (an int8 graph's convolutions
    /// run in int8 whatever it is; the rest of its graph runs in it).
    fn inference_precision(&self) -> Result<&'static str, String> {
        match self.precision {
            OpenVinoPrecision::Bf16 => Ok("bf16"),
            OpenVinoPrecision::F32 => Ok("f32"),
            OpenVinoPrecision::Auto | OpenVinoPrecision::Int8 => {
                static NATIVE_BF16: OnceLock<Result<bool, String>> = OnceLock::new();
                let native = NATIVE_BF16.get_or_init(|| {
                    load_library()?;
                    let capabilities = Core::new()
                        .map_err(failed)?
                        .get_property(&DeviceType::CPU, &PropertyKey::DeviceCapabilities)
                        .map_err(failed)?;
                    Ok(capabilities.split_whitespace().any(|c| c == "BF16"))
                });
                Ok(if native.clone()? { "bf16" } else { "f32" })
            }
        }
    }

    /// `graph` compiled for the CPU as `streams` streams of `threads_per_stream` threads each.
    fn compile(
        &self,
        graph: &[u8],
        streams: usize,
        threads_per_stream: usize,
    ) -> Result<CompiledModel, String> {
        let precision = self.inference_precision()?;
        let mut core = Core::new().map_err(failed)?;
        let cpu = DeviceType::CPU;
        let threads = (streams * threads_per_stream).to_string();
        core.set_properties(
            &cpu,
            [
                (RwPropertyKey::HintInferencePrecision, precision),
                (RwPropertyKey::NumStreams, &streams.to_string()),
                (RwPropertyKey::InferenceNumThreads, &threads),
                // The server shares the cores with its own HTTP and decoding threads (and, in
                // tests, with the load generator), so the OS schedules inference threads freely.
                (RwPropertyKey::HintEnableCpuPinning, "NO"),
            ],
        )
        .map_err(failed)?;
        let model = core.read_model_from_buffer(graph, None).map_err(failed)?;
        core.compile_model(&model, cpu).map_err(failed)
    }

    /// `count` infer requests of one compilation; each keeps the compiled model alive.
    fn requests(
        &self,
        graph: &[u8],
        count: usize,
        threads_each: usize,
    ) -> Result<Vec<InferRequest>, String> {
        let mut compiled = self.compile(graph, count, threads_each)?;
        (0..count)
            .map(|_| compiled.create_infer_request().map_err(failed))
            .collect()
    }
}

fn failed(error: impl std::fmt::Display) -> String {
    format!("OpenVINO: {error}")
}

/// Loads the discovered library once per process; a failure is remembered.
fn load_library() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = library_path(Runtime::OpenVino)?;
            // Loading runs foreign initialisers; a panic in the bindings becomes an error.
            guarded(|| openvino_sys::library::load_from(path))
                .map_err(|e| e.to_string())?
                .map_err(failed)
        })
        .clone()
}

impl GraphRuntime for OpenVinoPlugin {
    /// One infer request (of a compiled model it keeps alive).
    type Runner = InferRequest;
    const NAME: &'static str = NAME;

    fn load_library(&self) -> Result<(), String> {
        load_library()
    }

    fn concurrent_runs(&self) -> usize {
        self.streams
    }

    fn precision(&self) -> &'static str {
        if self.runs_int8() {
            "int8"
        } else {
            self.float_precision()
        }
    }

    fn float_precision(&self) -> &'static str {
        self.inference_precision().unwrap_or("f32")
    }

    fn int8_grid(&self, kind: BackboneKind) -> Option<&'static Int8Grid> {
        self.runs_int8().then(|| int8_grid(kind)).flatten()
    }

    /// One single-threaded stream per concurrent run, plus an all-core copy for lone requests
    /// (when `intra_threads` > 1).
    fn serving_runners(&self, graph: &[u8]) -> Result<ServingRunners<InferRequest>, String> {
        let solo = match self.intra_threads {
            0 | 1 => None,
            threads => self.requests(graph, 1, threads)?.pop(),
        };
        Ok(ServingRunners {
            solo,
            shared: self.requests(graph, self.streams.max(1), 1)?,
        })
    }

    fn batch_runner(&self, graph: &[u8]) -> Result<InferRequest, String> {
        self.requests(graph, 1, self.intra_threads.max(1))?
            .pop()
            .ok_or_else(|| failed("no infer request"))
    }

    fn run(request: &mut InferRequest, input: &[f32], shape: &[usize]) -> Result<Vec<f32>, String> {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let mut tensor =
            Tensor::new(ElementType::F32, &Shape::new(&dims).map_err(failed)?).map_err(failed)?;
        tensor
            .get_data_mut::<f32>()
            .map_err(failed)?
            .copy_from_slice(input);
        request.set_input_tensor(&tensor).map_err(failed)?;
        request.infer().map_err(failed)?;
        let output = request.get_output_tensor().map_err(failed)?;
        Ok(output.get_data::<f32>().map_err(failed)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph_runtime::tests::{
        assert_probe_runs_the_self_test_or_names, assert_side_by_side_runs_agree_with_a_lone_run,
    };
    use crate::plugin::BackendPlugin;

    #[test]
    fn side_by_side_runs_agree_with_a_lone_run() {
        let plugin = OpenVinoPlugin::with_options(&OpenVinoOptions {
            streams: 3,
            intra_threads: 2,
            precision: OpenVinoPrecision::Auto,
        });
        assert_eq!(plugin.parallel_runs(), 3);
        assert_side_by_side_runs_agree_with_a_lone_run(&plugin, Runtime::OpenVino);
    }

    #[test]
    fn probe_runs_the_self_test_or_names_the_variable() {
        assert_probe_runs_the_self_test_or_names(&OpenVinoPlugin::default(), Runtime::OpenVino);
    }

    /// Config spells the precisions `auto`, `bf16`, `f32`, `int8` and refuses others; `auto`
    /// computes in bfloat16 exactly where the CPU has it natively and MobileNetV2 in int8 exactly
    /// where it has VNNI (read independently from /proc/cpuinfo); EfficientNet-Lite0 has no INT8
    /// grid and computes in the float precision. What an explicit precision does to the numbers
    /// is checked in `tests/imagenet_port.rs`.
    #[test]
    fn precision_names_parse_and_auto_follows_the_cpu() {
        let parse = |name: &str| serde_json::from_str::<OpenVinoPrecision>(&format!("\"{name}\""));
        assert_eq!(parse("auto").unwrap(), OpenVinoPrecision::Auto);
        assert_eq!(parse("bf16").unwrap(), OpenVinoPrecision::Bf16);
        assert_eq!(parse("f32").unwrap(), OpenVinoPrecision::F32);
        assert_eq!(parse("int8").unwrap(), OpenVinoPrecision::Int8);
        assert!(parse("fp16").is_err());
        let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let has = |names: &[&str]| flags.split_whitespace().any(|f| names.contains(&f));
        let vnni = has(&["avx512_vnni", "avx_vnni", "amx_int8"]);
        let auto = OpenVinoPlugin::default();
        assert_eq!(auto.runs_int8(), vnni);
        let int8 = OpenVinoPlugin::with_options(&OpenVinoOptions {
            precision: OpenVinoPrecision::Int8,
            ..OpenVinoOptions::default()
        });
        let float = OpenVinoPlugin::with_options(&OpenVinoOptions {
            precision: OpenVinoPrecision::Bf16,
            ..OpenVinoOptions::default()
        });
        assert!(int8.runs_int8() && !float.runs_int8());
        assert!(int8.int8_grid(BackboneKind::EfficientnetLite0).is_none());
        match crate::runtimes::selected(Runtime::OpenVino) {
            Ok(_) => {
                let bf16 = has(&["avx512_bf16", "amx_bf16"]);
                assert_eq!(auto.runs_bf16(), Ok(bf16));
                let float_name = if bf16 { "bf16" } else { "f32" };
                let mobilenet = if vnni { "int8" } else { float_name };
                assert_eq!(
                    auto.precision_for(BackboneKind::MobilenetV2, false),
                    mobilenet
                );
                assert_eq!(int8.precision_for(BackboneKind::MobilenetV2, false), "int8");
                assert_eq!(
                    int8.precision_for(BackboneKind::MobilenetV2, true),
                    float_name
                );
                for plugin in [&auto, &int8] {
                    let kind = BackboneKind::EfficientnetLite0;
                    assert_eq!(plugin.precision_for(kind, false), float_name);
                }
            }
            Err(misses) => crate::test_skip::skip("openvino auto precision", &misses),
        }
    }
}
