//! Proves each backbone port is numerically right: ImageNet outputs for the shipped sample leaf
//! photos match the reference top-5 tables in the weights' READMEs (within 0.06 in probability,
//! same top-1), on every backend plugin available here, and every plugin's features agree with
//! flex's within 1e-3 (float32 plugins) or 15% of the largest feature (bfloat16). ONNX Runtime is
//! covered with `--features onnxruntime` and `ORT_DYLIB_PATH`, OpenVINO with `--features openvino`
//! and `OPENVINO_DYLIB_PATH`.

use std::path::PathBuf;

use burn::tensor::Device;
use sprig_backends::network::ImagenetClassifier;
use sprig_backends::weights::imagenet_weights;
use sprig_backends::{
    available_plugins, decode, prepare, BackboneKind, BackendPlugin, BurnPlugin, DecodeLimits,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// First names of the 1001 MobileNetV2 labels (index 0 = background).
fn labels() -> Vec<String> {
    std::fs::read_to_string(repo().join("models/mobilenet_v2/labels.txt"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').next().unwrap().trim().to_string())
        .collect()
}

type Table = [(&'static str, [(&'static str, f32); 5]); 6];

/// `models/mobilenet_v2/UPSTREAM_README.md`, float32 torch column.
const MOBILENET_V2: Table = [
    (
        "angular_leaf_spot/train-angular_leaf_spot_0002.jpg",
        [
            ("artichoke", 0.506),
            ("African chameleon", 0.193),
            ("custard apple", 0.080),
            ("tailed frog", 0.048),
            ("buckeye", 0.027),
        ],
    ),
    (
        "angular_leaf_spot/train-angular_leaf_spot_0035.jpg",
        [
            ("sulphur butterfly", 0.693),
            ("lycaenid", 0.143),
            ("cabbage butterfly", 0.050),
            ("sundial", 0.027),
            ("African chameleon", 0.021),
        ],
    ),
    (
        "bean_rust/train-bean_rust_0012.jpg",
        [
            ("fig", 0.609),
            ("acorn", 0.029),
            ("pot", 0.027),
            ("harvestman", 0.023),
            ("buckeye", 0.020),
        ],
    ),
    (
        "bean_rust/train-bean_rust_0013.jpg",
        [
            ("walking stick", 0.204),
            ("African chameleon", 0.153),
            ("head cabbage", 0.048),
            ("green snake", 0.028),
            ("pot", 0.027),
        ],
    ),
    (
        "healthy/train-healthy_0010.jpg",
        [
            ("walking stick", 0.214),
            ("pot", 0.153),
            ("leaf beetle", 0.064),
            ("artichoke", 0.041),
            ("tree frog", 0.037),
        ],
    ),
    (
        "healthy/train-healthy_0089.jpg",
        [
            ("walking stick", 0.889),
            ("leaf beetle", 0.029),
            ("harvestman", 0.023),
            ("mantis", 0.017),
            ("acorn", 0.007),
        ],
    ),
];

/// `models/efficientnet_lite0/UPSTREAM_README.md`, reference outputs on the leaf photos.
const EFFICIENTNET_LITE0: Table = [
    (
        "angular_leaf_spot/train-angular_leaf_spot_0002.jpg",
        [
            ("head cabbage", 0.146),
            ("custard apple", 0.081),
            ("walking stick", 0.042),
            ("vine snake", 0.031),
            ("pot", 0.018),
        ],
    ),
    (
        "angular_leaf_spot/train-angular_leaf_spot_0035.jpg",
        [
            ("ant", 0.089),
            ("walking stick", 0.072),
            ("leaf beetle", 0.070),
            ("sulphur butterfly", 0.052),
            ("lacewing", 0.051),
        ],
    ),
    (
        "bean_rust/train-bean_rust_0012.jpg",
        [
            ("fig", 0.088),
            ("harvestman", 0.070),
            ("acorn", 0.059),
            ("acorn squash", 0.043),
            ("leaf beetle", 0.041),
        ],
    ),
    (
        "bean_rust/train-bean_rust_0013.jpg",
        [
            ("walking stick", 0.268),
            ("harvestman", 0.102),
            ("sulphur butterfly", 0.045),
            ("eft", 0.043),
            ("mantis", 0.035),
        ],
    ),
    (
        "healthy/train-healthy_0010.jpg",
        [
            ("leaf beetle", 0.114),
            ("ant", 0.101),
            ("ladybug", 0.092),
            ("leafhopper", 0.027),
            ("tree frog", 0.026),
        ],
    ),
    (
        "healthy/train-healthy_0089.jpg",
        [
            ("walking stick", 0.232),
            ("leaf beetle", 0.192),
            ("fig", 0.082),
            ("ant", 0.056),
            ("leafhopper", 0.037),
        ],
    ),
];

/// Every plugin available here, plus OpenVINO forced to float32 (its `auto` is bfloat16 on CPUs
/// that have it, so the float32 path is checked too), saying which could not be checked and why.
fn plugins() -> Vec<Box<dyn BackendPlugin>> {
    let plugins = available_plugins();
    for (name, variable) in [
        ("onnxruntime", "ORT_DYLIB_PATH"),
        ("openvino", "OPENVINO_DYLIB_PATH"),
    ] {
        if !plugins.iter().any(|p| p.name() == name) {
            eprintln!("{name} skipped: needs --features {name} and {variable}");
        }
    }
    let openvino_f32 = plugins
        .iter()
        .any(|p| p.name() == "openvino")
        .then(openvino_in_f32)
        .flatten();
    plugins.into_iter().chain(openvino_f32).collect()
}

#[cfg(feature = "openvino")]
fn openvino_in_f32() -> Option<Box<dyn BackendPlugin>> {
    use sprig_backends::{OpenVinoOptions, OpenVinoPlugin, OpenVinoPrecision};
    Some(Box::new(OpenVinoPlugin::with_options(&OpenVinoOptions {
        precision: OpenVinoPrecision::F32,
        ..OpenVinoOptions::default()
    })))
}

#[cfg(not(feature = "openvino"))]
fn openvino_in_f32() -> Option<Box<dyn BackendPlugin>> {
    None
}

/// How far a plugin's features may be from flex's float32 ones: rounding noise in float32; in
/// bfloat16 (8 mantissa bits, 2^-8 relative per rounding, over 50-odd layers) a share of the
/// largest feature.
fn feature_tolerance(precision: &str, largest_feature: f32) -> f32 {
    match precision {
        "f32" => 1e-3,
        "bf16" => 0.15 * largest_feature,
        other => panic!("no tolerance for {other}"),
    }
}

fn check_port(kind: BackboneKind, table: &Table) {
    let all_labels = labels();
    // EfficientNet-Lite0 has no background class: its 1000 outputs are labels 1..=1000.
    let labels: &[String] = if kind.imagenet_classes() == 1000 {
        &all_labels[1..]
    } else {
        &all_labels
    };
    let index_of = |name: &str| {
        labels
            .iter()
            .position(|l| l == name)
            .unwrap_or_else(|| panic!("label {name}"))
    };
    let images: Vec<_> = table
        .iter()
        .map(|(file, _)| {
            let bytes = std::fs::read(repo().join("data/beans-sample/train").join(file)).unwrap();
            prepare(&decode(&bytes, &DecodeLimits::default()).unwrap().rgb)
        })
        .collect();
    let classifier =
        ImagenetClassifier::load(kind, imagenet_weights(kind), &Device::flex()).unwrap();
    let flex_features = BurnPlugin::flex()
        .feature_extractor(kind)
        .unwrap()
        .features(&images)
        .unwrap();
    for plugin in plugins() {
        let features = plugin
            .feature_extractor(kind)
            .unwrap()
            .features(&images)
            .unwrap();
        let difference = features
            .iter()
            .flatten()
            .zip(flex_features.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let largest = flex_features
            .iter()
            .flatten()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        let tolerance = feature_tolerance(plugin.precision(), largest);
        assert!(
            difference <= tolerance,
            "{kind} on {} ({}): features differ from flex by {difference} (largest feature \
             {largest}, tolerance {tolerance})",
            plugin.name(),
            plugin.precision()
        );
        let outputs = classifier.classify(&features);
        for ((file, expected), probabilities) in table.iter().zip(&outputs) {
            assert_eq!(probabilities.len(), kind.imagenet_classes());
            let top1 = sprig_backends::training::argmax(probabilities);
            assert_eq!(
                labels[top1],
                expected[0].0,
                "{kind} on {}: top-1 of {file}",
                plugin.name()
            );
            for (name, reference) in expected {
                let ours = probabilities[index_of(name)];
                assert!(
                    (ours - reference).abs() <= 0.06,
                    "{kind} on {}: {file} {name}: ours {ours:.3}, reference {reference:.3}",
                    plugin.name()
                );
            }
        }
        eprintln!(
            "{kind} on {} ({}): top-1 and top-5 match; features within {difference:.1e} of flex \
             (largest feature {largest:.2})",
            plugin.name(),
            plugin.precision()
        );
    }
}

#[test]
fn mobilenet_v2_matches_reference_outputs() {
    check_port(BackboneKind::MobilenetV2, &MOBILENET_V2);
}

#[test]
fn efficientnet_lite0_matches_reference_outputs() {
    check_port(BackboneKind::EfficientnetLite0, &EFFICIENTNET_LITE0);
}
