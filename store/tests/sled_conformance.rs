//! The store conformance suite on the real sled engine, plus sled-specific durability checks.

use sprig_store::{InsertOutcome, SledStore, StoreError, Stores};

/// Fresh stores on a temp dir; the dir is leaked for the test's lifetime (removed by the OS).
/// A small (1 MiB) page cache: the suite must hold with a bounded cache, as the server configures
/// one (`server.db_cache_mib`).
fn fresh() -> Stores {
    let dir = tempfile::tempdir().unwrap().keep();
    SledStore::open_with_cache(&dir, 1024 * 1024)
        .unwrap()
        .into_stores()
        .unwrap()
}

sprig_store::conformance_tests!(fresh);

#[test]
fn data_survives_reopen_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let stores = SledStore::open(dir.path()).unwrap().into_stores().unwrap();
        let outcome = stores
            .images
            .insert(sprig_store::conformance::new_image("a", 1))
            .unwrap();
        stores.database.flush().unwrap();
        match outcome {
            InsertOutcome::Stored(record) => record.id,
            InsertOutcome::Duplicate(_) => unreachable!(),
        }
    };
    let stores = SledStore::open(dir.path()).unwrap().into_stores().unwrap();
    assert_eq!(stores.images.get(id).unwrap().unwrap().class, "a");
    // Counters continue after a restart instead of reusing ids.
    let next = stores
        .images
        .insert(sprig_store::conformance::new_image("a", 2))
        .unwrap();
    assert!(matches!(next, InsertOutcome::Stored(r) if r.id == id + 1));
}

#[test]
fn refuses_a_data_dir_from_another_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path().join("db")).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", b"999".to_vec())
            .unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(dir.path()) {
        Err(StoreError::SchemaMismatch { found: 999, .. }) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("opened a store with a foreign schema"),
    }
}

/// Data dirs written before the settings store was removed hold a `settings` tree: it is left
/// alone (no schema change), and the store opens and verifies as before.
#[test]
fn opens_a_data_dir_that_still_has_the_old_settings_tree() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path().join("db")).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", b"1".to_vec())
            .unwrap();
        db.open_tree("settings")
            .unwrap()
            .insert("bootstrapped", b"true".to_vec())
            .unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    let trees = store.verify().unwrap();
    assert!(trees.contains(&("settings".to_string(), 1)), "{trees:?}");
    let stores = store.into_stores().unwrap();
    stores
        .images
        .insert(sprig_store::conformance::new_image("a", 1))
        .unwrap();
    stores.database.flush().unwrap();
}
