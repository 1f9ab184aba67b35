//! [`ImageStore`] on sled: records, original bytes and the content-hash index, changed together.

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::encoding::{
    decode, encode, from_tx, id_of, key, next_counter, paginate, scan, tx_decode,
};
use super::{SledStore, NEXT_IMAGE_ID};
use crate::error::{Result, StoreError};
use crate::stores::ImageStore;
use crate::types::*;

impl ImageStore for SledStore {
    fn insert(&self, image: NewImage) -> Result<InsertOutcome> {
        self.reserve.check(image.bytes.len() as u64)?;
        let trees = (
            &self.meta,
            &self.images,
            &self.image_blobs,
            &self.image_hashes,
        );
        trees
            .transaction(|(meta, images, blobs, hashes)| {
                if let Some(existing) = hashes.get(image.sha256.as_bytes())? {
                    let record = images.get(existing)?.ok_or_else(|| {
                        ConflictableTransactionError::Abort(StoreError::Corrupt(
                            "hash index points to a missing image".into(),
                        ))
                    })?;
                    return Ok(InsertOutcome::Duplicate(tx_decode(&record)?));
                }
                let id = next_counter(meta, NEXT_IMAGE_ID)?;
                let record = ImageRecord {
                    id,
                    class: image.class.clone(),
                    width: image.width,
                    height: image.height,
                    format: image.format.clone(),
                    content_type: image.content_type.clone(),
                    byte_size: image.bytes.len() as u64,
                    sha256: image.sha256.clone(),
                    source: image.source.clone(),
                    filename: image.filename.clone(),
                    split: image.split,
                    created_at: image.created_at,
                };
                images.insert(&key(id), encode(&record))?;
                blobs.insert(&key(id), image.bytes.as_slice())?;
                hashes.insert(image.sha256.as_bytes(), &key(id))?;
                Ok(InsertOutcome::Stored(record))
            })
            .map_err(from_tx)
    }

    fn get(&self, id: u64) -> Result<Option<ImageRecord>> {
        self.images.get(key(id))?.map(|v| decode(&v)).transpose()
    }

    fn find_by_hash(&self, sha256: &str) -> Result<Option<ImageRecord>> {
        match self.image_hashes.get(sha256.as_bytes())? {
            Some(id) => ImageStore::get(self, id_of(&id)?),
            None => Ok(None),
        }
    }

    fn content(&self, id: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.image_blobs.get(key(id))?.map(|v| v.to_vec()))
    }

    fn list(&self, filter: &ImageFilter, page: PageRequest) -> Result<Page<ImageRecord>> {
        let matching = self
            .images
            .iter()
            .values()
            .map(|v| decode::<ImageRecord>(&v?))
            .filter(|r| match r {
                Ok(r) => {
                    filter.class.as_ref().is_none_or(|c| &r.class == c)
                        && filter.split.is_none_or(|s| r.split == s)
                }
                Err(_) => true,
            });
        paginate(matching, page)
    }

    fn all(&self) -> Result<Vec<ImageRecord>> {
        scan(&self.images)
    }

    fn relabel(&self, id: u64, class: &str) -> Result<Option<ImageRecord>> {
        self.images
            .transaction(|images| {
                let Some(bytes) = images.get(key(id))? else {
                    return Ok(None);
                };
                let mut record: ImageRecord = tx_decode(&bytes)?;
                record.class = class.to_string();
                images.insert(&key(id), encode(&record))?;
                Ok(Some(record))
            })
            .map_err(from_tx)
    }

    fn delete(&self, id: u64) -> Result<Option<ImageRecord>> {
        (&self.images, &self.image_blobs, &self.image_hashes)
            .transaction(|(images, blobs, hashes)| {
                let Some(bytes) = images.remove(&key(id))? else {
                    return Ok(None);
                };
                let record: ImageRecord = tx_decode(&bytes)?;
                blobs.remove(&key(id))?;
                hashes.remove(record.sha256.as_bytes())?;
                Ok(Some(record))
            })
            .map_err(from_tx)
    }

    fn delete_class(&self, class: &str) -> Result<u64> {
        let victims: Vec<ImageRecord> = self
            .all()?
            .into_iter()
            .filter(|r| r.class == class)
            .collect();
        (&self.images, &self.image_blobs, &self.image_hashes)
            .transaction(|(images, blobs, hashes)| {
                for record in &victims {
                    images.remove(&key(record.id))?;
                    blobs.remove(&key(record.id))?;
                    hashes.remove(record.sha256.as_bytes())?;
                }
                Ok(())
            })
            .map_err(from_tx)?;
        Ok(victims.len() as u64)
    }

    fn classes(&self) -> Result<Vec<ClassSummary>> {
        Ok(ImageStore::stats(self)?.classes)
    }

    fn stats(&self) -> Result<DatasetStats> {
        let records: Vec<ImageRecord> = self.all()?;
        Ok(DatasetStats::from_records(&records))
    }

    fn count(&self) -> Result<u64> {
        Ok(self.images.len() as u64)
    }
}
