//! The labelled data set's use cases: getting images in, and the views and edits of images and
//! classes that the API and the CLI offer.

use std::path::Path;

use futures::Stream;
use sprig_store::{ClassSummary, DatasetStats, ImageFilter, ImageRecord, Page, PageRequest};

use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ingest::{validate_class_name, ImportSummary, IncomingFile, IngestReport, IngestedFile};

fn image_not_found(id: u64) -> CoreError {
    CoreError::not_found("image", id)
}

impl Engine {
    /// Largest accepted image file: callers stop reading a body past it.
    pub fn max_file_bytes(&self) -> u64 {
        self.ingest.max_file_bytes()
    }

    /// Validates and stores a class's files as `files` yields them (see [`crate::Ingest::ingest_many`]).
    pub async fn ingest_many<E: From<CoreError>>(
        &self,
        class: &str,
        source: &'static str,
        files: impl Stream<Item = std::result::Result<IncomingFile, E>>,
    ) -> std::result::Result<IngestReport, E> {
        self.ingest
            .ingest_many(class, source, files, &mut |_: &IngestedFile| {})
            .await
    }

    /// Imports a `DIR/<class>/<files>` tree with the uploads' validation and dedup.
    pub async fn import_dir(
        &self,
        dir: &Path,
        progress: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<ImportSummary> {
        self.ingest.import_dir(dir, "import", progress).await
    }

    /// Every class that has images, with its counts per split.
    pub fn classes(&self) -> Result<Vec<ClassSummary>> {
        Ok(self.stores.images.classes()?)
    }

    /// Deletes a class's images, refusing when fewer than 2 classes with data would remain.
    pub fn delete_class(&self, name: &str, force: bool) -> Result<u64> {
        validate_class_name(name)?;
        let classes = self.stores.images.classes()?;
        if !classes.iter().any(|c| c.name == name) {
            return Err(CoreError::not_found("class", name));
        }
        let remaining = classes
            .iter()
            .filter(|c| c.name != name && c.images > 0)
            .count();
        if remaining < 2 && !force {
            return Err(CoreError::WouldLeaveTooFewClasses {
                class: name.into(),
                remaining,
            });
        }
        Ok(self.stores.images.delete_class(name)?)
    }

    /// Image metadata, oldest first.
    pub fn images(&self, filter: &ImageFilter, page: PageRequest) -> Result<Page<ImageRecord>> {
        Ok(self.stores.images.list(filter, page)?)
    }

    pub fn image(&self, id: u64) -> Result<ImageRecord> {
        self.stores
            .images
            .get(id)?
            .ok_or_else(|| image_not_found(id))
    }

    /// An image's metadata and its bytes exactly as uploaded.
    pub fn image_content(&self, id: u64) -> Result<(ImageRecord, Vec<u8>)> {
        let record = self.image(id)?;
        let bytes = self
            .stores
            .images
            .content(id)?
            .ok_or_else(|| image_not_found(id))?;
        Ok((record, bytes))
    }

    /// Moves an image to another class (created if new); applies from the next retrain.
    pub fn relabel_image(&self, id: u64, class: &str) -> Result<ImageRecord> {
        let class = validate_class_name(class)?;
        self.stores
            .images
            .relabel(id, class)?
            .ok_or_else(|| image_not_found(id))
    }

    /// Deletes an image's metadata and bytes; answers with the deleted metadata.
    pub fn delete_image(&self, id: u64) -> Result<ImageRecord> {
        self.stores
            .images
            .delete(id)?
            .ok_or_else(|| image_not_found(id))
    }

    pub fn dataset_stats(&self) -> Result<DatasetStats> {
        Ok(self.stores.images.stats()?)
    }
}
