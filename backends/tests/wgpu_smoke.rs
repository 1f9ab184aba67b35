//! wgpu plugin smoke test (only with `--features wgpu`): the explicitly requested GPU backend runs
//! the same model as flex and agrees with it; `auto` takes wgpu only for a real GPU adapter.
//! On machines without a GPU, Debian's `mesa-vulkan-drivers` + `libvulkan1` provide lavapipe, a
//! software Vulkan device: slow (the first call compiles shaders), but real.
#![cfg(feature = "wgpu")]

use sprig_backends::{
    select_backend, BackboneKind, BackendPlugin, BurnPlugin, FeatureSpec, PreparedImage,
    RuntimeOptions,
};

fn leaf() -> PreparedImage {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/beans-sample/train/healthy/train-healthy_0010.jpg");
    let bytes = std::fs::read(path).unwrap();
    sprig_backends::prepare(
        &sprig_backends::decode(&bytes, &Default::default())
            .unwrap()
            .rgb,
    )
}

#[test]
fn wgpu_runs_the_model_and_agrees_with_flex() {
    let selection = match select_backend("wgpu", &RuntimeOptions::default()) {
        Ok(selection) => selection,
        Err(error) => {
            // No Vulkan/Metal/DX12 adapter at all (not even lavapipe): say so, do not pass silently.
            panic!("wgpu cannot run here ({error}); install mesa-vulkan-drivers and libvulkan1 for lavapipe");
        }
    };
    let wgpu = selection.plugin;
    assert_eq!(wgpu.name(), "wgpu");
    let image = leaf();
    let on_gpu = wgpu
        .feature_extractor(FeatureSpec::final_map(BackboneKind::MobilenetV2))
        .unwrap()
        .features(&[image.clone()])
        .unwrap();
    let on_cpu = BurnPlugin::flex()
        .feature_extractor(FeatureSpec::final_map(BackboneKind::MobilenetV2))
        .unwrap()
        .features(&[image])
        .unwrap();
    let max_difference = on_gpu[0]
        .iter()
        .zip(&on_cpu[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_difference < 1e-2,
        "wgpu and flex features differ by {max_difference}"
    );
    eprintln!("wgpu features match flex within {max_difference:e}");
}

/// `auto` takes wgpu exactly when there is a real GPU: where it took wgpu, the adapter is a card
/// (burn reports no physical card for a CPU adapter such as lavapipe); where it did not, the
/// reason says so and wgpu's default adapter, if any, is no card.
#[test]
fn auto_takes_wgpu_only_for_a_real_gpu() {
    let selection = select_backend("auto", &RuntimeOptions::default()).unwrap();
    eprintln!(
        "auto chose {}: {}",
        selection.plugin.name(),
        selection.reason
    );
    if selection.plugin.name() == "wgpu" {
        assert!(selection.plugin.is_accelerator());
        let identity = BurnPlugin::wgpu_gpu_only()
            .device()
            .identity()
            .expect("a wgpu device names its adapter");
        assert!(
            identity.physical.is_some(),
            "auto took wgpu on {}, which is no GPU card",
            identity.name
        );
    } else {
        assert!(
            selection
                .reason
                .contains("wgpu compiled in but no GPU adapter"),
            "the fallback says why: {}",
            selection.reason
        );
        // No adapter at all panics in burn; that is no GPU either.
        let default_adapter = std::panic::catch_unwind(|| BurnPlugin::wgpu().device().identity());
        if let Ok(Some(identity)) = default_adapter {
            assert!(
                identity.physical.is_none(),
                "auto passed over wgpu although its default adapter {} is a GPU card",
                identity.name
            );
        }
    }
}
