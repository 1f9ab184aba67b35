//! HTTPS served by sprig itself (`server.tls_cert` / `server.tls_key`): a certificate made here
//! (a CA and a leaf it signs), a client that verifies it, plain HTTP on the HTTPS port told what
//! to do, and the warning about a token sent in clear beyond loopback.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{test_image, Options, Sprig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::Value;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

const TOKEN: &str = "tls-test-token-0123456789abcdef";

/// A CA, and a certificate for 127.0.0.1 and localhost that it signs, written as PEM files.
struct Pki {
    _dir: tempfile::TempDir,
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn new_pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sprig test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    Pki {
        _dir: dir,
        ca_pem: ca.pem(),
        cert,
        key,
    }
}

/// A client that trusts exactly `roots` (none: it trusts nothing) and offers HTTP/2 and 1.1.
fn client(roots: &[&str]) -> reqwest13::Client {
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            store.add(cert.unwrap()).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest13::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn tls_options(pki: &Pki) -> Options {
    Options {
        no_wait_ready: true,
        ..Options::bootstrapped()
    }
    .env("SPRIG_SERVER__HEADER_TIMEOUT_SECS", "2")
    .env("SPRIG_SERVER__TLS_CERT", pki.cert.to_str().unwrap())
    .env("SPRIG_SERVER__TLS_KEY", pki.key.to_str().unwrap())
    .env("SPRIG_AUTH__TOKEN", TOKEN)
}

async fn wait_ready(server: &Sprig, client: &reqwest13::Client) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let status = client.get(server.url("/readyz")).send().await;
        if status.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "not ready over HTTPS");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn https_serves_the_api_to_a_client_that_verifies_the_certificate() {
    let pki = new_pki();
    let server = Sprig::start_with(tls_options(&pki));
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "the listening line names https: {}",
        server.url
    );
    let https = client(&[&pki.ca_pem]);
    wait_ready(&server, &https).await;

    let page = https.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.version(),
        reqwest13::Version::HTTP_2,
        "HTTP/2 chosen by ALPN"
    );
    assert!(page.text().await.unwrap().contains("<html"));
    let image = |name: &str| {
        reqwest13::multipart::Part::bytes(test_image("healthy", name)).file_name("leaf.jpg")
    };
    let form = reqwest13::multipart::Form::new().part("file", image("test-healthy_0007.jpg"));
    let predicted = https
        .post(server.url("/api/predict"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(predicted.status(), 200);
    let prediction: Value = predicted.json().await.unwrap();
    assert_eq!(prediction["success"], true, "{prediction}");

    // A write carries the token, over the encrypted connection only.
    let form = reqwest13::multipart::Form::new()
        .text("class", "healthy")
        .part("files", image("test-healthy_0030.jpg"));
    let uploaded = https
        .post(server.url("/api/images"))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = uploaded.status();
    let body: Value = uploaded.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    assert_eq!(body["stored"], 1, "{body}");

    // A client that does not trust the CA refuses the server: the certificate is really checked.
    let untrusting = client(&[]);
    let refused = untrusting.get(server.url("/readyz")).send().await;
    let error = format!("{:?}", refused.expect_err("an unknown issuer is refused"));
    assert!(
        error.contains("UnknownIssuer"),
        "refused for the certificate: {error}"
    );

    // Plain HTTP to the HTTPS port: a readable JSON 400, not a broken handshake.
    let plain = server.url.replace("https://", "http://");
    let answer = reqwest::Client::new()
        .get(format!("{plain}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "https_required", "{body}");

    // A client that starts a handshake and stalls is cut off at the header deadline (2 s here).
    let address = server.url.trim_start_matches("https://").to_string();
    let stalled = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.write_all(&[0x16, 0x03, 0x01]).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let started = Instant::now();
        let closed = matches!(stream.read(&mut [0u8; 64]), Ok(0) | Err(_));
        (closed, started.elapsed())
    })
    .await
    .unwrap();
    assert!(
        stalled.0 && stalled.1 < Duration::from_secs(10),
        "a stalled handshake is closed by the header deadline: {stalled:?}"
    );
    assert!(server.stop().success());
}

/// Starts `sprig serve` and returns its log once it listens (the warning comes before that).
fn start_log(options: Options) -> (Sprig, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sprig.log");
    let server = Sprig::start_with(Options {
        log_file: Some(log.clone()),
        no_wait_ready: true,
        ..options
    });
    let text = std::fs::read_to_string(&log).unwrap();
    (server, text, dir)
}

#[tokio::test]
async fn a_token_sent_in_clear_beyond_loopback_is_warned_about_once() {
    let pki = new_pki();
    let warning = "the token crosses the network in clear";
    let beyond_loopback = |options: Options| Options {
        addr: Some("0.0.0.0:0".into()),
        ..options
    };
    let (server, log, _dir) =
        start_log(beyond_loopback(Options::default()).env("SPRIG_AUTH__TOKEN", TOKEN));
    assert_eq!(log.matches(warning).count(), 1, "warned once: {log}");
    assert!(
        log.contains("server.tls_cert"),
        "the warning says how to fix it: {log}"
    );
    server.stop();

    let (server, log, _dir) = start_log(beyond_loopback(tls_options(&pki)));
    assert!(
        !log.contains(warning),
        "HTTPS: nothing to warn about: {log}"
    );
    server.stop();

    let (server, log, _dir) = start_log(Options::default().env("SPRIG_AUTH__TOKEN", TOKEN));
    assert!(
        !log.contains(warning),
        "loopback: nothing to warn about: {log}"
    );
    server.stop();
}

/// `sprig serve` with these TLS settings, expected to refuse to start: its stderr.
fn refused_start(cert: Option<&Path>, key: Option<&Path>) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sprig"));
    command
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("SPRIG_RUNTIMES__FETCH", "never")
        .env("SPRIG_BACKEND", "flex");
    if let Some(cert) = cert {
        command.env("SPRIG_SERVER__TLS_CERT", cert);
    }
    if let Some(key) = key {
        command.env("SPRIG_SERVER__TLS_KEY", key);
    }
    let output = command.output().unwrap();
    assert!(!output.status.success(), "sprig started anyway");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_tls_settings_stop_the_start_with_the_reason() {
    let pki = new_pki();
    let other = new_pki();
    let stderr = refused_start(Some(&pki.cert), None);
    assert!(
        stderr.contains("server.tls_cert and server.tls_key go together"),
        "{stderr}"
    );
    let stderr = refused_start(Some(&pki.cert), Some(&other.key));
    assert!(
        stderr.contains("the key does not fit the certificate"),
        "{stderr}"
    );
    let stderr = refused_start(Some(&pki.key), Some(&pki.key));
    assert!(stderr.contains("holds no PEM certificate"), "{stderr}");
    let missing = pki.cert.with_file_name("missing.pem");
    let stderr = refused_start(Some(&missing), Some(&pki.key));
    assert!(
        stderr.contains("server.tls_cert: reading") && stderr.contains("missing.pem"),
        "{stderr}"
    );
}
