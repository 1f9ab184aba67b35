//! Prediction over real HTTP with the real bootstrapped model: accuracy on held-out photos,
//! batch requests with bad files, dynamic batching, back-pressure, and the prediction log.

mod common;

use common::{held_out_images, test_image, Options, Sprig};
use futures::future::join_all;
use serde_json::Value;

#[tokio::test]
async fn predicts_held_out_photos_with_the_original_json_shape() {
    let server = Sprig::start();
    // Clear cases: the bootstrapped model is confident on these held-out photos.
    for (class, file) in [
        ("angular_leaf_spot", "test-angular_leaf_spot_0003.jpg"),
        ("bean_rust", "train-bean_rust_0366.jpg"),
        ("healthy", "test-healthy_0007.jpg"),
    ] {
        let (status, p) = server.predict(file, test_image(class, file)).await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["predicted_class"], class, "{file}: {p}");
        for key in [
            "success",
            "predicted_class",
            "predicted_index",
            "confidence",
            "probabilities",
            "filename",
            "timestamp",
            "model_version",
            "prediction_id",
            "latency_ms",
        ] {
            assert!(!p[key].is_null(), "{key} missing: {p}");
        }
        assert_eq!(p["success"], true);
        assert_eq!(p["filename"], file);
        let probabilities = p["probabilities"].as_object().unwrap();
        assert_eq!(probabilities.len(), 3);
        let sum: f64 = probabilities.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-3);
        assert_eq!(p["confidence"], probabilities[class]);
        // Uncertainty is the margin between the two likeliest classes; entropy the spread.
        let mut sorted: Vec<f64> = probabilities
            .values()
            .map(|v| v.as_f64().unwrap())
            .collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let margin = 1.0 - (sorted[0] - sorted[1]);
        let uncertainty = p["uncertainty"].as_f64().unwrap();
        assert!(
            (uncertainty - margin).abs() < 1e-5,
            "{uncertainty} against {margin}: {p}"
        );
        let entropy: f64 = sorted
            .iter()
            .filter(|&&q| q > 0.0)
            .map(|q| -q * q.ln())
            .sum::<f64>()
            / 3f64.ln();
        let served = p["entropy"].as_f64().unwrap();
        assert!(
            (served - entropy).abs() < 1e-4,
            "{served} against {entropy}: {p}"
        );
    }
    // Overall, far above chance (1/3) on all 30 held-out photos.
    let mut correct = 0;
    let images = held_out_images();
    for (class, name, bytes) in &images {
        let (_, p) = server.predict(name, bytes.clone()).await;
        correct += usize::from(p["predicted_class"] == class.as_str());
    }
    assert!(
        correct * 10 >= images.len() * 7,
        "held-out accuracy {correct}/{}",
        images.len()
    );

    let (status, log) = server.get("/api/predictions?per_page=5").await;
    assert_eq!(status, 200);
    assert_eq!(log["total"], 33);
    let ids: Vec<u64> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["prediction_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let (_, stats) = server.get("/api/stats/predictions").await;
    assert_eq!(stats["total"], 33);
    assert_eq!(stats["per_model_version"]["1"], 33);
    let histogram: u64 = stats["confidence_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(histogram, 33);
    let per_class: u64 = stats["per_class"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(per_class, 33);

    // The scores are stored with each prediction: the newest is the last answer above.
    let (_, last) = server
        .predict("again.jpg", images[images.len() - 1].2.clone())
        .await;
    let (_, log) = server.get("/api/predictions?per_page=1").await;
    assert_eq!(log["items"][0]["prediction_id"], last["prediction_id"]);
    assert_eq!(log["items"][0]["uncertainty"], last["uncertainty"]);
    assert_eq!(log["items"][0]["entropy"], last["entropy"]);
}

fn truncated_jpeg() -> Vec<u8> {
    let bytes = test_image("healthy", "test-healthy_0005.jpg");
    bytes[..bytes.len() / 2].to_vec()
}

#[tokio::test]
async fn batch_answers_each_file_and_tolerates_bad_ones() {
    let server = Sprig::start();
    let files = [
        ("good1.jpg", test_image("healthy", "test-healthy_0007.jpg")),
        ("cut.jpg", truncated_jpeg()),
        ("notes.jpg", b"just some text, not an image".to_vec()),
        (
            "good2.jpg",
            test_image("angular_leaf_spot", "test-angular_leaf_spot_0003.jpg"),
        ),
    ];
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in files {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
    }
    let response = server
        .client
        .post(server.url("/api/predict/batch"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (
            body["succeeded"].as_u64(),
            body["failed"].as_u64(),
            &body["success"]
        ),
        (Some(2), Some(2), &Value::Bool(false))
    );
    let results = body["results"].as_array().unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| r["filename"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["good1.jpg", "cut.jpg", "notes.jpg", "good2.jpg"]
    );
    assert_eq!(results[0]["prediction"]["predicted_class"], "healthy");
    assert_eq!(results[1]["error"]["code"], "truncated_image");
    assert_eq!(results[2]["error"]["code"], "unsupported_format");
    assert_eq!(
        results[3]["prediction"]["predicted_class"],
        "angular_leaf_spot"
    );
    // Only the successes are recorded.
    assert_eq!(server.get("/api/predictions").await.1["total"], 2);
}

#[tokio::test]
async fn batch_file_count_is_limited() {
    let server =
        Sprig::start_with(Options::bootstrapped().env("SPRIG_LIMITS__BATCH_MAX_FILES", "2"));
    let mut form = reqwest::multipart::Form::new();
    for i in 0..3 {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(test_image("healthy", "test-healthy_0007.jpg"))
                .file_name(format!("{i}.jpg")),
        );
    }
    let response = server
        .client
        .post(server.url("/api/predict/batch"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "too_many_files"
    );
}

/// Observed forward-pass batch sizes from `/metrics`: (batches, images, batches of size 1).
async fn batch_histogram(server: &Sprig) -> (f64, f64, f64) {
    let text = server.text("/metrics").await;
    let value = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    (
        value("sprig_inference_batch_size_count"),
        value("sprig_inference_batch_size_sum"),
        value("sprig_inference_batch_size_bucket{model_version=\"1\",le=\"1\"}"),
    )
}

#[tokio::test]
async fn concurrent_requests_share_forward_passes() {
    let server =
        Sprig::start_with(Options::bootstrapped().env("SPRIG_BATCHING__MAX_WAIT_MS", "100"));
    let image = test_image("healthy", "test-healthy_0007.jpg");
    let requests =
        (0..12).map(|i| server.predict(if i % 2 == 0 { "a.jpg" } else { "b.jpg" }, image.clone()));
    let answers = join_all(requests).await;
    assert!(answers
        .iter()
        .all(|(status, p)| *status == 200 && p["predicted_class"] == "healthy"));
    let (batches, images, singles) = batch_histogram(&server).await;
    assert_eq!(images, 12.0, "every request went through the batcher");
    assert!(
        batches < images,
        "some forward pass took more than one image: {batches} batches for {images} images"
    );
    assert!(singles < batches, "not every batch had size 1");
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let server = Sprig::start_with(
        Options::bootstrapped()
            .env("SPRIG_BATCHING__QUEUE_CAPACITY", "1")
            .env("SPRIG_BATCHING__MAX_BATCH_SIZE", "1")
            .env("SPRIG_BATCHING__WORKERS", "1"),
    );
    let image = test_image("bean_rust", "test-bean_rust_0037.jpg");
    let requests = (0..24).map(|_| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(image.clone()).file_name("x.jpg"),
        );
        server
            .client
            .post(server.url("/api/predict"))
            .multipart(form)
            .send()
    });
    let responses = join_all(requests).await;
    let mut rejected = 0;
    for response in responses {
        let response = response.unwrap();
        match response.status().as_u16() {
            200 => {}
            429 => {
                rejected += 1;
                assert!(response.headers().contains_key("retry-after"));
                assert_eq!(
                    response.json::<Value>().await.unwrap()["error"]["code"],
                    "overloaded"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        rejected > 0,
        "some requests were refused instead of queued without bound"
    );
    assert_eq!(server.get("/readyz").await.0, 200, "the server stays up");
}

#[tokio::test]
async fn offline_predict_command_uses_the_same_model() {
    let server = Sprig::start();
    let data_dir = server.data_dir.clone();
    let mut server = server;
    let keep = server.take_temp();
    assert!(server.stop().success());
    let file = common::repo().join("data/beans-sample/test/healthy/test-healthy_0007.jpg");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sprig"))
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("predict")
        .arg("--json")
        .arg(&file)
        .env("SPRIG_LOG__LEVEL", "warn")
        .env("SPRIG_RUNTIMES__FETCH", "never")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows[0]["predicted_class"], "healthy");
    assert_eq!(rows[0]["model_version"], 1);
    drop(keep);
}

/// The graph-runtime backends whose libraries are installed here (reporting the others as
/// skipped parts of `test`).
fn graph_runtimes_here(test: &str) -> Vec<&'static str> {
    use sprig_backends::runtimes::{selected, Runtime};
    Runtime::ALL
        .into_iter()
        .filter_map(|runtime| match selected(runtime) {
            Ok(_) => Some(runtime.name()),
            Err(misses) => {
                common::skip(test, &format!("{} not checked: {misses}", runtime.name()));
                None
            }
        })
        .collect()
}

/// With a graph runtime's library installed, `auto` serves through one of them, and each serves
/// the answers flex gives: the same class, and the confidence within 1e-3 in float32, 0.1 in
/// bfloat16 (8 mantissa bits; 0.04 seen on these photos) or 0.15 in int8.
#[tokio::test]
async fn graph_runtime_backends_answer_like_flex() {
    let backends = graph_runtimes_here("graph_runtime_backends_answer_like_flex");
    if backends.is_empty() {
        return;
    }
    let auto = Sprig::start_with(Options::bootstrapped().env("SPRIG_BACKEND", "auto"));
    let chosen = auto.get("/readyz").await.1["backend"].clone();
    assert!(
        backends.iter().any(|backend| chosen == *backend),
        "auto chose {chosen}"
    );
    drop(auto);
    let flex = Sprig::start();
    for backend in backends {
        let server = Sprig::start_with(Options::bootstrapped().env("SPRIG_BACKEND", backend));
        assert_eq!(server.get("/readyz").await.1["backend"], backend);
        let precision = server.get("/api/config").await.1["backend_precision"].clone();
        let tolerance = match precision.as_str() {
            Some("f32") => 1e-3,
            Some("bf16") => 0.1,
            // int8 on the QAT grid (the head trained on flex's float32 features): 0.088 seen.
            Some("int8") => 0.15,
            other => panic!("{backend}: precision {other:?}"),
        };
        let mut largest = 0.0f64;
        for (class, name, bytes) in held_out_images().into_iter().step_by(5) {
            let (_, ours) = server.predict(&name, bytes.clone()).await;
            let (_, reference) = flex.predict(&name, bytes).await;
            assert_eq!(
                ours["predicted_class"], reference["predicted_class"],
                "{backend}: {class}/{name}"
            );
            let difference = (ours["confidence"].as_f64().unwrap()
                - reference["confidence"].as_f64().unwrap())
            .abs();
            assert!(
                difference < tolerance,
                "{backend} ({precision}): {name}: confidence differs by {difference}"
            );
            largest = largest.max(difference);
        }
        eprintln!("{backend} ({precision}): same classes as flex, confidence within {largest:.4}");
    }
}

/// `jpeg` with an EXIF segment (APP1) right after its start-of-image marker, whose one entry is
/// Orientation = `orientation` (a big-endian TIFF structure, written out by hand).
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    assert_eq!(jpeg[..2], [0xFF, 0xD8], "a JPEG starts with SOI");
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(b"MM\0\x2A"); // big-endian TIFF
    exif.extend(8u32.to_be_bytes()); // IFD0 right after this header
    exif.extend(1u16.to_be_bytes()); // one entry:
    exif.extend(0x0112u16.to_be_bytes()); //   Orientation
    exif.extend(3u16.to_be_bytes()); //   SHORT
    exif.extend(1u32.to_be_bytes()); //   one value,
    exif.extend(orientation.to_be_bytes()); //   in the first 2 of 4 bytes
    exif.extend([0, 0]);
    exif.extend(0u32.to_be_bytes()); // no next IFD
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend((exif.len() as u16 + 2).to_be_bytes());
    out.extend(exif);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A JPEG whose decoded pixels do not depend on how the image was turned before encoding: every
/// 16×16 block (a JPEG macroblock, with subsampled chroma) is one colour, at the best quality.
fn blocky_jpeg(image: &image::RgbImage) -> Vec<u8> {
    assert!(image.width().is_multiple_of(16) && image.height().is_multiple_of(16));
    let mut blocky = image.clone();
    for (bx, by) in
        (0..image.width() / 16).flat_map(|x| (0..image.height() / 16).map(move |y| (x, y)))
    {
        let block = image::imageops::crop_imm(image, bx * 16, by * 16, 16, 16).to_image();
        let mut sum = [0u32; 3];
        for pixel in block.pixels() {
            for (total, value) in sum.iter_mut().zip(pixel.0) {
                *total += u32::from(value);
            }
        }
        let mean = image::Rgb(sum.map(|total| (total / 256) as u8));
        for (x, y) in (0..16).flat_map(|x| (0..16).map(move |y| (x, y))) {
            blocky.put_pixel(bx * 16 + x, by * 16 + y, mean);
        }
    }
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 100)
        .encode_image(&blocky)
        .unwrap();
    bytes
}

/// The probabilities of a prediction, by class name.
fn probabilities(prediction: &Value) -> Vec<(String, f64)> {
    let mut all: Vec<(String, f64)> = prediction["probabilities"]
        .as_object()
        .unwrap_or_else(|| panic!("{prediction}"))
        .iter()
        .map(|(class, p)| (class.clone(), p.as_f64().unwrap()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn largest_difference(a: &[(String, f64)], b: &[(String, f64)]) -> f64 {
    a.iter()
        .zip(b)
        .map(|((_, x), (_, y))| (x - y).abs())
        .fold(0.0, f64::max)
}

/// A photo whose EXIF Orientation says "turn 90° clockwise to show" (6, as phones write them) is
/// decoded upright: stored with the shown width and height, and predicted like the same photo
/// turned in its pixels, not like the pixels as stored.
#[tokio::test]
async fn exif_orientation_is_applied_to_uploads_and_predictions() {
    let server = Sprig::start();
    let photo = image::load_from_memory(&test_image("bean_rust", "test-bean_rust_0019.jpg"))
        .unwrap()
        .to_rgb8();
    // A landscape strip of it, so that turning it changes its width and height.
    let (width, height) = (photo.width(), photo.height() / 2);
    let landscape = image::imageops::crop_imm(&photo, 0, height / 2, width, height).to_image();
    let plain = blocky_jpeg(&landscape);
    let tagged = with_exif_orientation(&plain, 6);
    let turned = blocky_jpeg(&image::imageops::rotate90(&landscape));

    let (status, body) = server
        .upload(
            "orientation",
            vec![
                ("tagged.jpg".into(), tagged.clone()),
                ("plain.jpg".into(), plain.clone()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let size = |i: usize| {
        let image = &body["items"][i]["image"];
        (image["width"].as_u64(), image["height"].as_u64())
    };
    let (width, height) = (u64::from(width), u64::from(height));
    assert_eq!(
        size(0),
        (Some(height), Some(width)),
        "stored upright: {body}"
    );
    assert_eq!(size(1), (Some(width), Some(height)), "untagged: {body}");

    let mut shown = Vec::new();
    for (name, bytes) in [("tagged", tagged), ("turned", turned), ("plain", plain)] {
        let (status, prediction) = server.predict(name, bytes).await;
        assert_eq!(status, 200, "{name}: {prediction}");
        shown.push(probabilities(&prediction));
    }
    let as_turned = largest_difference(&shown[0], &shown[1]);
    let as_stored = largest_difference(&shown[0], &shown[2]);
    println!("measured: tagged vs turned {as_turned:.6}, tagged vs as stored {as_stored:.6}");
    // Turning this photo moves its probabilities (0.107 measured), so the comparison tells; the
    // tagged and the turned photo decode to the same pixels, so they get the same answer.
    assert!(as_stored > 0.03, "turning does not matter here: {shown:?}");
    assert!(
        as_turned < 1e-3,
        "the tagged photo was not predicted like the turned one ({as_turned:.4} apart; \
         {as_stored:.4} from its stored pixels): {shown:?}"
    );
}
