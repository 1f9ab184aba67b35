//! `sprig check` and `sprig export`: verify a data dir, and copy its labelled images out as a
//! `DIR/<class>/<file>` tree that `sprig import` reads back (the restore path that does not
//! depend on the database's own files). Both need the server stopped (one process per data dir).

use std::path::Path;

use anyhow::{bail, Context};
use sprig_store::{PageRequest, StoreError, StoreUrl};

use crate::config::Config;
use crate::store_admin::{open_database, open_postgres, open_stores};

/// Opens the database and reads every record; prints what each tree holds or what is damaged.
pub fn check(config: &Config) -> anyhow::Result<()> {
    let dir = match config.store_url()? {
        StoreUrl::Sled(dir) => dir,
        url @ StoreUrl::Postgres(_) => return check_postgres(config, &url),
    };
    let database = open_database(config, &dir)?;
    let dir = dir.display().to_string();
    match database.verify() {
        Ok(trees) => {
            for (name, entries) in trees {
                println!("{name:<24} {entries:>10} records");
            }
            println!("{dir}: every record is readable");
            Ok(())
        }
        Err(error) => bail!(
            "{dir}: damaged ({error}). Export what is readable with `sprig --data-dir {dir} \
             export BACKUP_DIR`, move the data dir aside, then `sprig import BACKUP_DIR/images` \
             and retrain"
        ),
    }
}

/// PostgreSQL checks its own pages; here: the schema version, and that the records sprig reads
/// whole (images, versions, activations) decode; jobs and predictions are counted.
fn check_postgres(config: &Config, url: &StoreUrl) -> anyhow::Result<()> {
    let store = open_postgres(config, url)?;
    println!("schema version {}", store.schema_version()?);
    let stores = store.into_stores();
    let first = PageRequest::new(1, 1);
    let counts = [
        ("images", stores.images.all()?.len() as u64),
        ("model versions", stores.models.list()?.len() as u64),
        ("activations", stores.models.history()?.len() as u64),
        ("jobs", stores.jobs.list(first)?.total),
        ("predictions", stores.predictions.list(first)?.total),
        ("cached features", stores.features.count()?),
    ];
    for (name, count) in counts {
        println!("{name:<24} {count:>10} records");
    }
    println!("{}: readable", url.display());
    Ok(())
}

/// Writes every readable labelled image to `out/images/<class>/<id>-<name>`; reports unreadable
/// ones and carries on.
pub fn export(config: &Config, out: &Path) -> anyhow::Result<()> {
    let stores = open_stores(config)?;
    let images = stores.images.all().context("listing the images")?;
    let (mut written, mut unreadable) = (0u64, 0u64);
    for image in &images {
        let class_dir = out.join("images").join(&image.class);
        std::fs::create_dir_all(&class_dir)
            .with_context(|| format!("creating {}", class_dir.display()))?;
        match stores.images.content(image.id) {
            Ok(Some(bytes)) => {
                let name = image
                    .filename
                    .clone()
                    .unwrap_or_else(|| format!("image.{}", image.format));
                let path = class_dir.join(format!("{}-{name}", image.id));
                std::fs::write(&path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                written += 1;
            }
            Ok(None) | Err(StoreError::Corrupt(_)) => {
                eprintln!(
                    "image {} ({}): content unreadable, skipped",
                    image.id, image.class
                );
                unreadable += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
    println!(
        "exported {written} images to {} ({unreadable} unreadable); restore with \
         `sprig --data-dir NEW_DIR import {}`",
        out.join("images").display(),
        out.join("images").display()
    );
    Ok(())
}
