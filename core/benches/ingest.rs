//! Ingest throughput: `Ingest::import_dir` (the code path of `sprig import` and, per file, of
//! `POST /api/images`) into a fresh sled store — validation, full strict decode, hashing, dedup
//! lookup and the transactional write. Uses the 900-image beans training set when
//! `../shared/datasets/beans/train` exists, else the 60 bundled demo images.
//!
//! `cargo bench -p sprig-core --bench ingest`

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sprig_core::{Ingest, IngestLimits};
use sprig_store::SledStore;

fn dataset() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let shared = root.join("../shared/datasets/beans/train");
    if shared.is_dir() {
        shared
    } else {
        eprintln!(
            "../shared/datasets/beans/train not found: benchmarking the 60 bundled demo images"
        );
        root.join("data/beans-sample/train")
    }
}

fn count_files(dir: &PathBuf) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|class| std::fs::read_dir(class.path()).map_or(0, |files| files.count() as u64))
        .sum()
}

fn import(c: &mut Criterion) {
    let dir = dataset();
    let images = count_files(&dir);
    let mut group = c.benchmark_group("ingest");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(60))
        .throughput(Throughput::Elements(images));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    group.bench_function(format!("import_dir_{images}_images"), |b| {
        b.iter_batched(
            || {
                let temp = tempfile::tempdir().unwrap();
                let stores = SledStore::open(temp.path()).unwrap().into_stores().unwrap();
                (
                    temp,
                    Ingest::new(
                        stores.images.clone(),
                        IngestLimits::default(),
                        sprig_core::ingest::decode_permits(),
                    ),
                )
            },
            |(temp, ingest)| {
                let summary = runtime
                    .block_on(ingest.import_dir(&dir, "import", &mut |_, _| {}))
                    .unwrap();
                assert_eq!(summary.stored(), images);
                drop(ingest);
                temp
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, import);
criterion_main!(benches);
