//! Opening the store `store.url` names (the embedded data dir or PostgreSQL) with errors that
//! say what to do, and the store commands: `sprig migrate` (PostgreSQL schema) and
//! `sprig migrate-store` (an embedded data dir moved into PostgreSQL, checked).

use anyhow::bail;
use sprig_store::{PgStore, SledStore, StoreError, StoreUrl, Stores};

use crate::config::Config;

/// Opens the stores `store.url` names: the embedded data dir, with a clear message when another
/// process holds it or its database is damaged, or PostgreSQL, with one when it cannot be
/// reached or is at another schema version.
pub fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    match config.store_url()? {
        StoreUrl::Sled(dir) => Ok(open_database(config, &dir)?.into_stores()?),
        url @ StoreUrl::Postgres(_) => Ok(open_postgres(config, &url)?.into_stores()),
    }
}

/// Connects to PostgreSQL and applies (or, with `store.migrate = false`, checks) the schema.
pub fn open_postgres(config: &Config, url: &StoreUrl) -> anyhow::Result<PgStore> {
    let store = connect_postgres_lazily(config, url)?;
    store
        .prepare()
        .map_err(|error| describe_postgres_error(config, url, error))?;
    Ok(store)
}

/// The PostgreSQL store of `url` with `[store]`'s pool settings, not yet connected.
pub fn connect_postgres_lazily(config: &Config, url: &StoreUrl) -> anyhow::Result<PgStore> {
    let StoreUrl::Postgres(address) = url else {
        bail!("store.url is {}, not a PostgreSQL URL", url.display());
    };
    let mut options = config.pg_options();
    options.url = address.clone();
    PgStore::connect_lazy(&options).map_err(|error| describe_postgres_error(config, url, error))
}

/// A PostgreSQL failure at start, with what to do about it.
pub fn describe_postgres_error(
    config: &Config,
    url: &StoreUrl,
    error: StoreError,
) -> anyhow::Error {
    let way_out = match &error {
        StoreError::Unavailable(_) => format!(
            "PostgreSQL at {} cannot be reached within {} s; check that it runs and that \
             store.url (SPRIG_STORE__URL, --store-url) is right",
            url.display(),
            config.store.acquire_timeout_secs
        ),
        StoreError::SchemaMismatch { .. } if !config.store.migrate => format!(
            "the database at {} needs migrating: run `sprig migrate` (store.migrate is false)",
            url.display()
        ),
        _ => format!("opening the database at {}", url.display()),
    };
    anyhow::anyhow!("{way_out}: {error}")
}

/// `sprig migrate`: brings a PostgreSQL database to this build's schema and exits.
pub fn migrate(config: &Config) -> anyhow::Result<()> {
    let url = config.store_url()?;
    if let StoreUrl::Sled(dir) = &url {
        bail!(
            "store.url is the embedded store ({}), which needs no migrations;              `sprig migrate` applies to postgres:// URLs",
            dir.display()
        );
    }
    let mut forced = config.clone();
    forced.store.migrate = true;
    let store = open_postgres(&forced, &url)?;
    println!(
        "{}: schema version {} (this build's)",
        url.display(),
        store.schema_version()?
    );
    Ok(())
}

/// Opens the data dir's database (what `open_stores` and `sprig check` share).
pub fn open_database(config: &Config, dir: &std::path::Path) -> anyhow::Result<SledStore> {
    let cache_bytes = config.server.db_cache_mib * 1024 * 1024;
    let store = SledStore::open_with_cache(dir, cache_bytes).map_err(|error| {
        let way_out = match &error {
            StoreError::Locked(_) => format!(
                "another sprig process is using {} (one process per data dir); stop it first",
                dir.display()
            ),
            StoreError::Corrupt(_) => format!(
                "the database in {} is damaged. `sprig --data-dir {0} check` reports what is \
                 readable; restore the data dir from a backup (README: \"Backups and damaged \
                 data\"), or move it aside to start empty",
                dir.display()
            ),
            _ => format!("opening the data dir {}", dir.display()),
        };
        anyhow::anyhow!("{way_out}: {error}")
    })?;
    Ok(store.with_min_free(config.server.min_free_mib * 1024 * 1024))
}

/// `sprig migrate-store --to postgres://…`: copies the configured store (`--from`, default the
/// data dir) into an empty PostgreSQL database, keeping every id, and verifies the copy.
pub fn migrate_store(config: &Config, from: Option<&str>, to: &str) -> anyhow::Result<()> {
    let source_url = match from {
        Some(url) => StoreUrl::parse(url)?,
        None => config.store_url()?,
    };
    let StoreUrl::Sled(dir) = &source_url else {
        bail!(
            "--from must be an embedded store (sled:DIR); {} is not",
            source_url.display()
        );
    };
    let target_url = StoreUrl::parse(to)?;
    if !matches!(target_url, StoreUrl::Postgres(_)) {
        bail!("--to must be a postgres:// URL");
    }
    let source = open_database(config, dir)?.into_stores()?;
    let mut forced = config.clone();
    forced.store.migrate = true;
    let target = open_postgres(&forced, &target_url)?;
    println!(
        "copying {} into {}",
        source_url.display(),
        target_url.display()
    );
    let report = target.import(&source, &mut |step| println!("  {step}"))?;
    println!(
        "copied and verified: {} images ({} bytes, every one re-hashed), {} versions (weights \
         compared), {} activations, {} jobs, {} predictions, {} review queue items, {} rollouts",
        report.images,
        report.image_bytes,
        report.versions,
        report.activations,
        report.jobs,
        report.predictions,
        report.review_items,
        report.rollouts
    );
    if report.jobs_interrupted > 0 {
        println!(
            "{} unfinished job(s) recorded as failed (interrupted): start them again",
            report.jobs_interrupted
        );
    }
    println!(
        "the feature cache is not copied; the first retrain on PostgreSQL recomputes it. \
         Serve with --store-url {} (or SPRIG_STORE__URL)",
        target_url.display()
    );
    Ok(())
}
