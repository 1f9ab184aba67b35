//! Data management over real HTTP: strict validation with crafted bad files, dedup, browse and
//! edit, statistics kept consistent, `sprig import` idempotency, and a kill -9 mid-upload.

mod common;

use std::io::Cursor;
use std::time::Duration;

use common::{test_image, Options, Sprig};
use serde_json::Value;

/// A PNG whose header claims 40 000 × 40 000 pixels (a decompression bomb if decoded).
fn png_bomb() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32fast::hash(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(40_000u32.to_be_bytes());
    ihdr.extend(40_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A distinct, valid PNG (noise seeded by `n`).
fn synthetic_png(n: u32, side: u32) -> Vec<u8> {
    let mut state = n.wrapping_mul(2_654_435_761).wrapping_add(1);
    let image = image::RgbImage::from_fn(side, side, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgb([
            (state & 0xFF) as u8,
            (state >> 8 & 0xFF) as u8,
            (state >> 16 & 0xFF) as u8,
        ])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn truncated_jpeg() -> Vec<u8> {
    let bytes = test_image("healthy", "test-healthy_0005.jpg");
    bytes[..bytes.len() * 3 / 4].to_vec()
}

async fn image_count(server: &Sprig) -> u64 {
    server.get("/api/dataset/stats").await.1["total_images"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn validation_rejects_bad_files_and_stores_nothing_of_them() {
    let server = Sprig::start();
    let before = image_count(&server).await;
    let (status, body) = server
        .upload(
            "rust-new",
            vec![
                (
                    "good.jpg".into(),
                    test_image("bean_rust", "test-bean_rust_0019.jpg"),
                ),
                ("cut.jpg".into(), truncated_jpeg()),
                ("bomb.png".into(), png_bomb()),
                (
                    "notes.jpg".into(),
                    b"plain text with an image extension".to_vec(),
                ),
                ("empty.jpg".into(), Vec::new()),
                ("ok.png".into(), synthetic_png(7, 64)),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    let statuses: Vec<&str> = items
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["stored", "rejected", "rejected", "rejected", "rejected", "stored"],
        "{body}"
    );
    let codes: Vec<&str> = items[1..5]
        .iter()
        .map(|i| i["error"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "truncated_image",
            "image_too_large",
            "unsupported_format",
            "empty_file"
        ]
    );
    assert_eq!(
        (body["stored"].as_u64(), body["rejected"].as_u64()),
        (Some(2), Some(4))
    );
    let png = &items[5]["image"];
    assert_eq!(
        (
            png["format"].as_str(),
            png["width"].as_u64(),
            png["content_type"].as_str()
        ),
        (Some("png"), Some(64), Some("image/png"))
    );
    assert_eq!(
        image_count(&server).await,
        before + 2,
        "only the valid files were stored"
    );

    // A path-like class name refuses the whole request.
    for class in ["../x", "a/b", "Upper", ""] {
        let (status, body) = server
            .upload(class, vec![("a.png".into(), synthetic_png(8, 32))])
            .await;
        assert_eq!(status, 422, "{class}: {body}");
        assert_eq!(body["error"]["code"], "invalid_class_name");
    }
    // Wrong content type for the whole request.
    let response = server
        .client
        .post(server.url("/api/images"))
        .json(&serde_json::json!({"class": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(image_count(&server).await, before + 2);
    // Oversized body (by Content-Length) is refused before reading it.
    let limited =
        Sprig::start_with(Options::bootstrapped().env("SPRIG_LIMITS__UPLOAD_BODY_BYTES", "10000"));
    let (status, body) = limited
        .upload("big", vec![("big.png".into(), synthetic_png(9, 200))])
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
}

#[tokio::test]
async fn duplicates_within_and_across_requests() {
    let server = Sprig::start();
    let a = synthetic_png(1, 48);
    let b = synthetic_png(2, 48);
    let (_, first) = server
        .upload(
            "dups",
            vec![
                ("a.png".into(), a.clone()),
                ("b.png".into(), b.clone()),
                ("a-again.png".into(), a.clone()),
            ],
        )
        .await;
    let statuses: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["stored", "stored", "duplicate"]);
    assert_eq!(
        first["items"][2]["image"]["id"],
        first["items"][0]["image"]["id"]
    );
    // Across requests and classes: the existing image and its class are reported.
    let (_, second) = server.upload("other", vec![("b-copy.png".into(), b)]).await;
    assert_eq!(second["items"][0]["status"], "duplicate");
    assert_eq!(second["items"][0]["image"]["class"], "dups");
    assert_eq!(
        second["items"][0]["image"]["id"],
        first["items"][1]["image"]["id"]
    );
    // The demo images are already there too.
    let (_, third) = server
        .upload(
            "dups",
            vec![(
                "demo.jpg".into(),
                std::fs::read(
                    common::repo().join("data/beans-sample/train/healthy/train-healthy_0010.jpg"),
                )
                .unwrap(),
            )],
        )
        .await;
    assert_eq!(third["items"][0]["status"], "duplicate");
    assert_eq!(third["items"][0]["image"]["source"], "demo");
}

#[tokio::test]
async fn browse_relabel_delete_and_stats_stay_consistent() {
    let server = Sprig::start();
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("{i}.png"), synthetic_png(100 + i, 40)))
        .collect();
    let (_, upload) = server.upload("extra", files.clone()).await;
    let ids: Vec<u64> = upload["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"]["id"].as_u64().unwrap())
        .collect();

    let check_stats = |stats: &Value, classes: &Value, expected: &[(&str, u64)]| {
        for (name, count) in expected {
            let stat = stats["classes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == *name);
            assert_eq!(
                stat.map_or(0, |c| c["images"].as_u64().unwrap()),
                *count,
                "stats for {name}: {stats}"
            );
            let class = classes["classes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == *name);
            assert_eq!(
                class.map_or(0, |c| c["images"].as_u64().unwrap()),
                *count,
                "classes for {name}"
            );
            if let Some(c) = stat {
                assert_eq!(
                    c["train"].as_u64().unwrap() + c["validation"].as_u64().unwrap(),
                    *count
                );
            }
        }
        let total: u64 = stats["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["images"].as_u64().unwrap())
            .sum();
        assert_eq!(stats["total_images"].as_u64().unwrap(), total);
        let per_day: u64 = stats["uploads_per_day"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["count"].as_u64().unwrap())
            .sum();
        assert_eq!(per_day, total);
    };
    let (_, stats) = server.get("/api/dataset/stats").await;
    let (_, classes) = server.get("/api/classes").await;
    check_stats(&stats, &classes, &[("extra", 6), ("healthy", 20)]);
    assert!(
        stats["mean_width"].as_f64().unwrap() > 0.0 && stats["total_bytes"].as_u64().unwrap() > 0
    );

    // Browse: paging, filters, metadata, original bytes.
    let (_, page) = server
        .get("/api/images?class=extra&per_page=4&page=2")
        .await;
    assert_eq!(
        (
            page["total"].as_u64(),
            page["items"].as_array().unwrap().len()
        ),
        (Some(6), 2)
    );
    let (_, validation) = server
        .get("/api/images?split=validation&per_page=500")
        .await;
    assert!(validation["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["split"] == "validation"));
    let (status, meta) = server.get(&format!("/api/images/{}", ids[0])).await;
    assert_eq!(
        (status, meta["class"].as_str(), meta["filename"].as_str()),
        (200, Some("extra"), Some("0.png"))
    );
    let content = server
        .client
        .get(server.url(&format!("/api/images/{}/content", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(content.headers()["content-type"], "image/png");
    assert_eq!(content.bytes().await.unwrap().to_vec(), files[0].1);

    // Relabel and delete are reflected everywhere.
    let response = server
        .client
        .patch(server.url(&format!("/api/images/{}", ids[0])))
        .json(&serde_json::json!({"class": "healthy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = server
        .client
        .patch(server.url(&format!("/api/images/{}", ids[1])))
        .json(&serde_json::json!({"class": "../etc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let response = server
        .client
        .delete(server.url(&format!("/api/images/{}", ids[2])))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.get(&format!("/api/images/{}", ids[2])).await.0, 404);
    let (_, stats) = server.get("/api/dataset/stats").await;
    let (_, classes) = server.get("/api/classes").await;
    check_stats(&stats, &classes, &[("extra", 4), ("healthy", 21)]);

    // Deleting a class: allowed while 2+ classes with data remain, refused below that unless forced.
    let response = server
        .client
        .delete(server.url("/api/classes/extra"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["deleted"], 4);
    server
        .client
        .delete(server.url("/api/classes/bean_rust"))
        .send()
        .await
        .unwrap();
    let response = server
        .client
        .delete(server.url("/api/classes/healthy"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "too_few_classes"
    );
    let response = server
        .client
        .delete(server.url("/api/classes/healthy?force=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, stats) = server.get("/api/dataset/stats").await;
    let (_, classes) = server.get("/api/classes").await;
    check_stats(
        &stats,
        &classes,
        &[("extra", 0), ("healthy", 0), ("angular_leaf_spot", 20)],
    );
    assert_eq!(
        server
            .client
            .delete(server.url("/api/classes/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

fn sprig(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sprig"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("SPRIG_LOG__LEVEL", "warn")
        // Opening the engine would fetch a missing runtime; tests fetch nothing by surprise.
        .env("SPRIG_RUNTIMES__FETCH", "never")
        .output()
        .unwrap()
}

#[test]
fn import_is_idempotent_and_reports_per_class() {
    let data = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    for (class, n) in [("cats", 3u32), ("dogs", 2)] {
        std::fs::create_dir_all(source.path().join(class)).unwrap();
        for i in 0..n {
            std::fs::write(
                source.path().join(class).join(format!("{i}.png")),
                synthetic_png(i + 50 * n, 32),
            )
            .unwrap();
        }
    }
    std::fs::write(source.path().join("dogs/broken.jpg"), b"nope").unwrap();
    let first = sprig(data.path(), &["import", source.path().to_str().unwrap()]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["cats", "3", "0", "0"]),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["dogs", "2", "0", "1"]),
        "{out}"
    );
    assert!(out.contains("broken.jpg"), "rejections are listed: {out}");
    let second = sprig(data.path(), &["import", source.path().to_str().unwrap()]);
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["cats", "0", "3", "0"]),
        "second run stores nothing: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["dogs", "0", "2", "1"]),
        "{out}"
    );
    // A class directory that is not a safe class name is refused.
    std::fs::create_dir_all(source.path().join("Bad Name")).unwrap();
    assert!(
        !sprig(data.path(), &["import", source.path().to_str().unwrap()])
            .status
            .success()
    );
}

#[tokio::test]
async fn kill_9_during_a_bulk_upload_leaves_only_whole_images() {
    let mut server = Sprig::start();
    let keep = server.take_temp();
    let before = image_count(&server).await;
    let files: Vec<(String, Vec<u8>)> = (0..400)
        .map(|i| (format!("{i}.png"), synthetic_png(1000 + i, 160)))
        .collect();
    let upload = {
        let client = server.client.clone();
        let url = server.url("/api/images");
        let files = files.clone();
        tokio::spawn(async move {
            let mut form = reqwest::multipart::Form::new().text("class", "bulk");
            for (name, bytes) in files {
                form = form.part(
                    "files",
                    reqwest::multipart::Part::bytes(bytes).file_name(name),
                );
            }
            client.post(url).multipart(form).send().await
        })
    };
    // Kill while images are being stored.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let count = image_count(&server).await;
        if count > before + 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never started storing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let data_dir = server.kill9();
    assert!(
        upload.await.unwrap().is_err(),
        "the connection died with the server"
    );

    let server = Sprig::start_with(Options {
        data_dir: Some(data_dir),
        ..Options::default()
    });
    let (_, stats) = server.get("/api/dataset/stats").await;
    let stored = stats["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bulk")
        .map_or(0, |c| c["images"].as_u64().unwrap());
    assert!(
        stored > 0 && stored < 400,
        "the kill landed mid-upload ({stored} stored)"
    );
    let (_, listed) = server.get("/api/images?class=bulk&per_page=500").await;
    let listed = listed["items"].as_array().unwrap().clone();
    assert_eq!(listed.len() as u64, stored, "listing and statistics agree");
    assert_eq!(stats["total_images"].as_u64().unwrap(), before + stored);
    for image in &listed {
        let content = server
            .client
            .get(server.url(&format!("/api/images/{}/content", image["id"])))
            .send()
            .await
            .unwrap();
        assert_eq!(content.status(), 200);
        let bytes = content.bytes().await.unwrap();
        assert_eq!(bytes.len() as u64, image["byte_size"].as_u64().unwrap());
        let index: usize = image["filename"]
            .as_str()
            .unwrap()
            .trim_end_matches(".png")
            .parse()
            .unwrap();
        assert_eq!(
            bytes.to_vec(),
            files[index].1,
            "stored bytes are whole and belong to their record"
        );
    }
    // Re-sending everything stores exactly the missing ones: the hash index matches the images.
    let (_, again) = server.upload("bulk", files).await;
    assert_eq!(again["duplicates"].as_u64().unwrap(), stored);
    assert_eq!(again["stored"].as_u64().unwrap(), 400 - stored);
    drop(keep);
}
