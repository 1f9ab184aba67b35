//! The tests' visible skip, shared by the unit tests here and the integration tests
//! (`tests/common/mod.rs` includes this file).

/// A visible skip: the Rust harness hides a passing test's stderr, so besides the stderr line
/// one line `sprig_backends::<test>: <reason>` goes to the file `SPRIG_SKIP_LOG` names, if set
/// (`scripts/test.sh` prints the collected lines in its summary).
pub fn skip(test: &str, reason: &str) {
    eprintln!("SKIP sprig_backends::{test}: {reason}");
    let Some(log) = std::env::var_os("SPRIG_SKIP_LOG") else {
        return;
    };
    let line = format!("sprig_backends::{test}: {reason}\n");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log);
    std::io::Write::write_all(&mut file.expect("SPRIG_SKIP_LOG opens"), line.as_bytes()).unwrap();
}
