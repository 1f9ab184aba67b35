//! Inference benchmarks: MobileNetV2 feature extraction at batch 1 and 16 on every plugin
//! available here, and decode + preprocess per image.
//!
//! ```text
//! cargo bench -p sprig-backends                               # flex, ndarray, preprocessing
//! ORT_DYLIB_PATH=/path/to/libonnxruntime.so.1.32.0 \
//!     cargo bench -p sprig-backends --features onnxruntime    # + onnxruntime and its settings
//! ```
//!
//! Images: `SPRIG_BENCH_IMAGES` (a folder of JPEGs) if set, else the peer load test's 500×375
//! JPEGs in `../shared/baselines/bench/images` beside the workspace when present, else the
//! repository's `data/beans-sample` photos. Medians are in
//! `target/criterion/<group>/<id>/new/estimates.json`; `backends/BENCHMARKS.md` has the results.

use std::path::{Path, PathBuf};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use sprig_backends::{
    available_plugins, decode, prepare, BackboneKind, BackendPlugin, DecodeLimits, FeatureSpec,
    PreparedImage,
};

/// The batch sizes the server sees: one request alone, and a full dynamic batch.
const BATCHES: [usize; 2] = [1, 16];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.jpg` below `dir`, sorted, read into memory.
fn jpegs(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg"))
            {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).expect("readable image"))
        .collect()
}

fn bench_images() -> Vec<Vec<u8>> {
    let candidates = [
        std::env::var_os("SPRIG_BENCH_IMAGES").map(PathBuf::from),
        Some(workspace().join("../shared/baselines/bench/images")),
        Some(workspace().join("data/beans-sample")),
    ];
    for dir in candidates.into_iter().flatten() {
        let images = jpegs(&dir);
        if !images.is_empty() {
            let dir = dir.canonicalize().unwrap_or(dir);
            eprintln!(
                "bench images: {} JPEGs from {}",
                images.len(),
                dir.display()
            );
            return images;
        }
    }
    panic!("no bench images found");
}

/// At least the largest batch of prepared images (cycling through the files).
fn prepared_batch(files: &[Vec<u8>]) -> Vec<PreparedImage> {
    let prepared: Vec<PreparedImage> = files
        .iter()
        .map(|bytes| prepare(&decode(bytes, &DecodeLimits::default()).unwrap().rgb))
        .collect();
    prepared.iter().cycle().take(BATCHES[1]).cloned().collect()
}

/// The plugins to time, under a label: every available one, plus ONNX Runtime's alternative
/// session settings and OpenVINO in float32, so the defaults can be justified from the same run.
fn plugins() -> Vec<(String, Box<dyn BackendPlugin>)> {
    let available: Vec<(String, Box<dyn BackendPlugin>)> = available_plugins()
        .into_iter()
        .map(|plugin| (plugin.name().to_string(), plugin))
        .collect();
    let here = |name: &str, variable: &str| {
        let loaded = available.iter().any(|(plugin, _)| plugin == name);
        if !loaded {
            eprintln!("{name} benches skipped: needs --features {name} and {variable}");
        }
        loaded
    };
    let mut variants = Vec::new();
    if here("onnxruntime", "ORT_DYLIB_PATH") {
        variants.extend(onnxruntime_variants());
    }
    if here("openvino", "OPENVINO_DYLIB_PATH") {
        variants.extend(openvino_variants());
    }
    available.into_iter().chain(variants).collect()
}

#[cfg(feature = "onnxruntime")]
fn onnxruntime_variants() -> Vec<(String, Box<dyn BackendPlugin>)> {
    use sprig_backends::{OrtPlugin, OrtSettings};
    let defaults = OrtSettings::default();
    let variants = [
        (
            "onnxruntime-spinning",
            OrtSettings {
                spinning: true,
                ..defaults.clone()
            },
        ),
        (
            "onnxruntime-1-thread",
            OrtSettings {
                sessions: 1,
                intra_threads: 1,
                ..defaults
            },
        ),
    ];
    variants
        .into_iter()
        .map(|(label, settings)| {
            let plugin: Box<dyn BackendPlugin> = Box::new(OrtPlugin::with_settings(settings));
            (label.to_string(), plugin)
        })
        .collect()
}

#[cfg(not(feature = "onnxruntime"))]
fn onnxruntime_variants() -> Vec<(String, Box<dyn BackendPlugin>)> {
    Vec::new()
}

fn forward(c: &mut Criterion) {
    let images = prepared_batch(&bench_images());
    let mut group = c.benchmark_group("forward_mobilenet_v2");
    // Iterations take 5 ms to 5 s (ndarray at batch 16): flat sampling keeps the slow ones to
    // ten runs instead of criterion's linear ramp of 55.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for (label, plugin) in plugins() {
        let extractor = plugin
            .feature_extractor(FeatureSpec::final_map(BackboneKind::MobilenetV2))
            .expect("plugin passed its probe");
        for batch in BATCHES {
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(
                BenchmarkId::new(&label, batch),
                &images[..batch],
                |b, images| b.iter(|| extractor.features(images).unwrap()),
            );
        }
    }
    group.finish();
}

fn preprocess(c: &mut Criterion) {
    let files = bench_images();
    let limits = DecodeLimits::default();
    let mut group = c.benchmark_group("preprocess");
    // ~1.3 ms an image: 50 samples fit criterion's default 5 s.
    group.sample_size(50).throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("decode_and_prepare", |b| {
        b.iter(|| {
            let bytes = &files[next % files.len()];
            next += 1;
            prepare(&decode(bytes, &limits).unwrap().rgb)
        })
    });
    group.finish();
}

criterion_group!(benches, forward, preprocess);
criterion_main!(benches);

/// OpenVINO forced to float32, beside `auto` (bfloat16 where the CPU has it).
#[cfg(feature = "openvino")]
fn openvino_variants() -> Vec<(String, Box<dyn BackendPlugin>)> {
    use sprig_backends::{OpenVinoOptions, OpenVinoPlugin, OpenVinoPrecision};
    let f32_only = OpenVinoPlugin::with_options(&OpenVinoOptions {
        precision: OpenVinoPrecision::F32,
        ..OpenVinoOptions::default()
    });
    vec![("openvino-f32".to_string(), Box::new(f32_only))]
}

#[cfg(not(feature = "openvino"))]
fn openvino_variants() -> Vec<(String, Box<dyn BackendPlugin>)> {
    Vec::new()
}
