//! The original project's page URLs keep working: each opens the single page (whose script
//! picks the view from the path), and its web form's `POST /predict` answers with a result page.

mod common;

use common::Sprig;

fn form(field: &str, name: &str, bytes: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        field.to_string(),
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
    )
}

#[tokio::test]
async fn the_original_page_urls_open_the_single_page_and_its_form_predicts() {
    let server = Sprig::start();
    for path in [
        "/predict",
        "/visualizations",
        "/upload_data",
        "/retrain",
        "/monitoring",
        "/review",
    ] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        let page = response.text().await.unwrap();
        assert!(page.contains("src=\"/static/app.js\""), "{path}: {page}");
    }

    let leaf = common::test_image("healthy", "test-healthy_0007.jpg");
    let response = server
        .client
        .post(server.url("/predict"))
        .multipart(form("file", "leaf.jpg", leaf))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<strong id=\"predicted-class\">healthy</strong>"),
        "{page}"
    );
    assert!(page.contains("model version 1"), "{page}");
    // The prediction is recorded like the API's.
    let (_, predictions) = server.get("/api/predictions").await;
    assert_eq!(predictions["items"][0]["filename"], "leaf.jpg");

    let broken = server
        .client
        .post(server.url("/predict"))
        .multipart(form("file", "broken.jpg", b"not an image".to_vec()))
        .send()
        .await
        .unwrap();
    assert!(broken.status().is_client_error(), "{}", broken.status());
    let page = broken.text().await.unwrap();
    assert!(page.contains("Prediction failed"), "{page}");

    let no_file = server
        .client
        .post(server.url("/predict"))
        .multipart(form("image", "leaf.jpg", vec![1, 2, 3]))
        .send()
        .await
        .unwrap();
    assert_eq!(no_file.status(), 400);
    assert!(no_file.text().await.unwrap().contains("invalid_multipart"));
    assert_eq!(server.get("/readyz").await.0, 200);
}
