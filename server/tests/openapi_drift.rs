//! The committed spec (`openapi/openapi.json`) must be exactly what the code generates, so
//! clients generated from the file match the server. Regenerate with
//! `cargo run -p sprig -- openapi > openapi/openapi.json`.

#[test]
fn committed_spec_matches_generated_spec() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let committed = std::fs::read_to_string(&path).expect("openapi/openapi.json exists");
    let generated = sprig::api::spec_json();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `cargo run -p sprig -- openapi > openapi/openapi.json` and commit it"
    );
}
