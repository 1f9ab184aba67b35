//! Helpers shared by the integration tests (each test file includes this module).

#[path = "../../src/test_skip.rs"]
mod test_skip;

pub use test_skip::skip;
