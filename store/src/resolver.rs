//! The engine chosen by URL (as Quickwit's metastore resolver picks file or PostgreSQL):
//! `sled:DIR` (the embedded default) or `postgres://…` / `postgresql://…` (shared by replicas).

use std::path::PathBuf;

use crate::error::{Result, StoreError};
use crate::postgres::{PgOptions, PgStore};
use crate::sled_store::SledStore;
use crate::stores::Stores;

/// A parsed `store.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sled(PathBuf),
    Postgres(String),
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl> {
        if let Some(dir) = url.strip_prefix("sled:") {
            let dir = dir.strip_prefix("//").unwrap_or(dir);
            if dir.is_empty() {
                return Err(StoreError::Engine(
                    "`sled:` needs a directory, e.g. sled:./sprig-data".into(),
                ));
            }
            return Ok(StoreUrl::Sled(PathBuf::from(dir)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_string()));
        }
        Err(StoreError::Engine(format!(
            "unknown store URL `{}`: use sled:DIR or postgres://user@host:port/database",
            redact(url)
        )))
    }

    /// The URL with any password replaced, for logs and errors.
    pub fn display(&self) -> String {
        match self {
            StoreUrl::Sled(dir) => format!("sled:{}", dir.display()),
            StoreUrl::Postgres(url) => redact(url),
        }
    }
}

/// Opens the stores `url` names. `sled_cache_bytes` bounds sled's page cache; `pg` carries the
/// PostgreSQL pool settings (its `url` is replaced by `url`).
pub fn open(url: &StoreUrl, sled_cache_bytes: u64, pg: &PgOptions) -> Result<Stores> {
    match url {
        StoreUrl::Sled(dir) => SledStore::open_with_cache(dir, sled_cache_bytes)?.into_stores(),
        StoreUrl::Postgres(address) => {
            let options = PgOptions {
                url: address.clone(),
                ..pg.clone()
            };
            Ok(PgStore::connect(&options)?.into_stores())
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_engine() {
        assert_eq!(
            StoreUrl::parse("sled:./data").unwrap(),
            StoreUrl::Sled(PathBuf::from("./data"))
        );
        assert_eq!(
            StoreUrl::parse("sled:///var/lib/sprig").unwrap(),
            StoreUrl::Sled(PathBuf::from("/var/lib/sprig"))
        );
        assert!(matches!(
            StoreUrl::parse("postgresql://u@h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
        let error = StoreUrl::parse("mysql://u:pw@h/db")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("u:***@h") && !error.contains("pw"),
            "{error}"
        );
        assert!(StoreUrl::parse("sled:").is_err());
        assert_eq!(
            StoreUrl::parse("postgres://sprig:hunter2@db:5432/sprig")
                .unwrap()
                .display(),
            "postgres://sprig:***@db:5432/sprig"
        );
    }
}
