//! The graph runtimes at start (`[runtimes]`: fetch what the backend wants when it is missing,
//! bounded in time, falling back with one log line) and the `sprig runtimes` commands.

use std::time::Duration;

use anyhow::bail;
use sprig_backends::runtimes::{self, cache, cache_dir, fetch, pins, Discovery, Runtime};
use sprig_backends::{select_backend, BackboneKind, RuntimeOptions};

use crate::config::{Config, FetchMode};

/// With `runtimes.fetch = "auto"`, fetches the runtime the configured backend would serve through when it is not found. Runs before backend
/// selection; never fails: a runtime that cannot be had leaves selection to fall back.
pub fn prepare(config: &Config) {
    let Some(runtime) = wanted(&config.engine.backend) else {
        return;
    };
    let cache = cache_dir();
    let Err(misses) = Discovery::from_environment(cache.clone()).locate(runtime) else {
        return;
    };
    let name = runtime.name();
    if config.runtimes.fetch == FetchMode::Never {
        tracing::warn!(
            "{name} not found ({misses}); runtimes.fetch = \"never\", so it is not fetched: run \
             `sprig runtimes fetch` on a connected machine and copy its cache dir to {}, or set {}",
            cache.display(),
            runtime.dylib_env()
        );
        return;
    }
    tracing::info!(
        "{name} not found; fetching its pinned {} wheel into {} (once; runtimes.fetch = \"never\" \
         turns this off)",
        runtime.version(),
        cache.display()
    );
    let timeout = Duration::from_secs(config.runtimes.fetch_timeout_secs);
    match fetch::fetch(runtime, &cache, timeout) {
        Ok(library) => tracing::info!("fetched {name}: {}", library.display()),
        Err(why) => tracing::warn!(
            "could not fetch {name}: {why}; falling back to the next backend (`sprig runtimes \
             fetch` retries; runtimes.fetch = \"never\" stops trying)"
        ),
    }
}

/// The runtime `backend` would serve through: for `auto`, OpenVINO where the CPU computes
/// bfloat16 natively or has int8 dot products, else ONNX Runtime (as `auto` selects); none when
/// it is not compiled in.
fn wanted(backend: &str) -> Option<Runtime> {
    let runtime = match backend {
        "auto" if runtimes::cpu_favours_openvino() => Runtime::OpenVino,
        "auto" => Runtime::OnnxRuntime,
        other => Runtime::of_backend(other)?,
    };
    let compiled_in = match runtime {
        Runtime::OnnxRuntime => cfg!(feature = "onnxruntime"),
        Runtime::OpenVino => cfg!(feature = "openvino"),
    };
    compiled_in.then_some(runtime)
}

/// `sprig runtimes`: each runtime, where it was found, its version and the precision it would
/// compute in, or why it is unusable.
pub fn list(config: &Config) -> anyhow::Result<()> {
    let options = RuntimeOptions {
        onnxruntime: config.engine.onnxruntime,
        openvino: config.engine.openvino,
    };
    for runtime in Runtime::ALL {
        let name = runtime.name();
        match runtimes::selected(runtime) {
            Err(misses) => println!("{name}: not found\n  {misses}"),
            Ok(found) => {
                match select_backend(name, &options) {
                    Ok(selection) => {
                        let plugin = &selection.plugin;
                        let shipped = plugin.precision_for(BackboneKind::MobilenetV2, false);
                        let float = plugin.precision_for(BackboneKind::MobilenetV2, true);
                        let precision = if shipped == float {
                            shipped.to_string()
                        } else {
                            format!("{shipped} (MobileNetV2 as shipped; otherwise {float})")
                        };
                        println!(
                            "{name}: usable, version {}, computes in {precision}",
                            found.version
                        )
                    }
                    Err(e) => println!("{name}: found but unusable: {e}"),
                }
                println!("  from {}: {}", found.source, found.path.display());
            }
        }
    }
    println!(
        "cache dir: {} (runtimes.fetch = \"{}\")",
        cache_dir().display(),
        match config.runtimes.fetch {
            FetchMode::Auto => "auto",
            FetchMode::Never => "never",
        }
    );
    Ok(())
}

/// `sprig runtimes fetch`: fetches every runtime's pinned wheel for this platform into the cache
/// (what is cached and verifies is kept).
pub fn fetch_all(config: &Config) -> anyhow::Result<()> {
    let cache = cache_dir();
    let timeout = Duration::from_secs(config.runtimes.fetch_timeout_secs);
    let mut failed = Vec::new();
    for runtime in Runtime::ALL {
        let name = runtime.name();
        let cached = pins::pin_here(runtime)
            .ok()
            .and_then(|pin| cache::verify(&cache, pin).ok().flatten());
        let result = match cached {
            Some(library) => Ok(format!("already cached: {}", library.display())),
            None => fetch::fetch(runtime, &cache, timeout)
                .map(|library| format!("fetched: {}", library.display())),
        };
        match result {
            Ok(done) => println!("{name} {}: {done}", runtime.version()),
            Err(why) => {
                println!("{name} {}: {why}", runtime.version());
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        bail!("could not fetch {}", failed.join(", "));
    }
    Ok(())
}
