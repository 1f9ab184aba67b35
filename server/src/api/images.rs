use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Payload;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::{ApiResponse, OpenApi};
use sprig_core::{sanitize_filename, validate_class_name, CoreError, IngestOutcome};
use sprig_store::{ImageFilter, PageRequest};

use super::auth::ApiAuth;
use super::body::RequiredJson;
use super::error::{ApiError, ApiResult};
use super::predict::{default_page, default_per_page, require_files, ImageSource, ReadError};
use super::types::*;
use super::ApiTags;
use crate::state::{Access, AppState};

pub struct ImagesApi;

/// The original bytes of an image, served with its detected content type.
pub struct ImageContent {
    bytes: Vec<u8>,
    content_type: String,
}

impl poem::IntoResponse for ImageContent {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type(self.content_type)
            .body(self.bytes)
    }
}

impl ApiResponse for ImageContent {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description:
                    "The image as uploaded; `Content-Type` is its detected type (e.g. `image/jpeg`)",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "image/*",
                    schema: Binary::<Vec<u8>>::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

fn image_not_found(id: u64) -> ApiError {
    CoreError::not_found("image", id).into()
}

#[OpenApi(prefix_path = "/api")]
impl ImagesApi {
    /// Upload labelled images
    ///
    /// Multipart form: `class` plus one or more `files`; or one image as the raw
    /// `application/octet-stream` body with the `class` (and optionally `filename`) query
    /// parameters. Each file is validated fully (content sniffing, strict decode, pixel limits)
    /// before anything is stored, deduplicated by content hash, and answered with one item per file,
    /// in order: `stored`, `duplicate` (with the image that already has this content) or `rejected`
    /// (with a code and message). One bad file never fails the others. The class is created on
    /// first upload.
    #[oai(
        path = "/images",
        method = "post",
        operation_id = "uploadImages",
        tag = "ApiTags::Images"
    )]
    async fn upload(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
        /// Class of a raw-body image (required then; a multipart form names it in its `class` field).
        #[oai(name = "class")]
        raw_class: Query<Option<String>>,
        /// File name recorded for a raw-body image (multipart parts carry their own).
        filename: Query<Option<String>>,
        body: UploadBody,
    ) -> ApiResult<Json<UploadResponse>> {
        state.authorize(&auth, Access::Write)?;
        let (class, images): (String, Vec<ImageSource>) = match body {
            UploadBody::Multipart(form) => {
                require_files(&form.files)?;
                (
                    form.class,
                    form.files.into_iter().map(ImageSource::Part).collect(),
                )
            }
            UploadBody::Raw(bytes) => {
                // No class is an invalid one (422, like any other class the rules refuse).
                let class = raw_class.0.unwrap_or_default();
                (class, vec![ImageSource::Raw(filename.0, bytes.0)])
            }
        };
        let class = validate_class_name(&class)
            .map_err(ApiError::from)?
            .to_string();
        let limit = state.config.limits.upload_max_files;
        if images.len() > limit {
            return Err(ApiError::too_many_files(images.len(), limit));
        }
        let mut items = Vec::with_capacity(images.len());
        let max_bytes = state.engine.ingest.limits().max_file_bytes;
        for (index, image) in images.into_iter().enumerate() {
            // The response names each file as it is stored.
            let filename = image.file_name().map(|name| sanitize_filename(&name));
            let outcome = match image.read(max_bytes).await {
                Ok(bytes) => {
                    state
                        .engine
                        .ingest
                        .ingest_async(class.clone(), bytes, filename.clone(), "upload")
                        .await
                }
                Err(ReadError::Core(error)) => IngestOutcome::Rejected(error),
                Err(ReadError::Api(error)) => return Err(error),
            };
            let (status, image, error) = match outcome {
                IngestOutcome::Stored(record) => (UploadStatus::Stored, Some(record.into()), None),
                IngestOutcome::Duplicate(record) => {
                    (UploadStatus::Duplicate, Some(record.into()), None)
                }
                IngestOutcome::Rejected(error) => (
                    UploadStatus::Rejected,
                    None,
                    Some(ApiError::from(error).detail()),
                ),
            };
            items.push(UploadItem {
                index: index as u64,
                filename,
                status,
                image,
                error,
            });
        }
        let count = |s: UploadStatus| items.iter().filter(|i| i.status == s).count() as u64;
        let (stored, duplicates, rejected) = (
            count(UploadStatus::Stored),
            count(UploadStatus::Duplicate),
            count(UploadStatus::Rejected),
        );
        Ok(Json(UploadResponse {
            success: rejected == 0,
            class,
            stored,
            duplicates,
            rejected,
            items,
        }))
    }

    /// List classes with their image counts
    ///
    /// Every class that has images, with its image count per split and its total bytes.
    #[oai(
        path = "/classes",
        method = "get",
        operation_id = "listClasses",
        tag = "ApiTags::Images"
    )]
    async fn classes(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
    ) -> ApiResult<Json<ClassList>> {
        state.authorize(&auth, Access::Read)?;
        let classes = state.engine.stores.images.classes()?;
        Ok(Json(ClassList {
            classes: classes.into_iter().map(Into::into).collect(),
        }))
    }

    /// Delete a class and all its images
    ///
    /// Refused with `too_few_classes` while it would leave fewer than 2 classes with data,
    /// unless `force=true`.
    #[oai(
        path = "/classes/:name",
        method = "delete",
        operation_id = "deleteClass",
        tag = "ApiTags::Images"
    )]
    async fn delete_class(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
        /// Class name.
        name: Path<String>,
        /// Delete even if fewer than 2 classes with data would remain.
        #[oai(default)]
        force: Query<bool>,
    ) -> ApiResult<Json<DeletedClass>> {
        state.authorize(&auth, Access::Write)?;
        let deleted = state.engine.delete_class(&name.0, force.0)?;
        Ok(Json(DeletedClass {
            success: true,
            class: name.0,
            deleted,
        }))
    }

    /// List images (paged metadata)
    ///
    /// Oldest first; filter by class and/or split.
    #[oai(
        path = "/images",
        method = "get",
        operation_id = "listImages",
        tag = "ApiTags::Images"
    )]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
        /// Only this class.
        class: Query<Option<String>>,
        /// Only this split.
        split: Query<Option<SplitName>>,
        /// 1-based page number.
        #[oai(
            default = "default_page",
            validator(minimum(value = "1"), maximum(value = "4294967295"))
        )]
        page: Query<u32>,
        /// Items per page.
        #[oai(
            default = "default_per_page",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        per_page: Query<u32>,
    ) -> ApiResult<Json<ImagePage>> {
        state.authorize(&auth, Access::Read)?;
        let filter = ImageFilter {
            class: class.0,
            split: split.0.map(Into::into),
        };
        let request = PageRequest::new(page.0, per_page.0);
        let result = state.engine.stores.images.list(&filter, request)?;
        Ok(Json(ImagePage::new(request, result, Into::into)))
    }

    /// Get an image's metadata
    ///
    /// Class, size, format, content hash, source, split and upload time of one image.
    #[oai(
        path = "/images/:id",
        method = "get",
        operation_id = "getImage",
        tag = "ApiTags::Images"
    )]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
        /// Image id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        id: Path<u64>,
    ) -> ApiResult<Json<ImageInfo>> {
        state.authorize(&auth, Access::Read)?;
        let record = state
            .engine
            .stores
            .images
            .get(id.0)?
            .ok_or_else(|| image_not_found(id.0))?;
        Ok(Json(record.into()))
    }

    /// Download an image's original bytes
    ///
    /// The bytes exactly as uploaded, with the detected `Content-Type` (e.g. `image/jpeg`).
    #[oai(
        path = "/images/:id/content",
        method = "get",
        operation_id = "getImageContent",
        tag = "ApiTags::Images"
    )]
    async fn content(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
        /// Image id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        id: Path<u64>,
    ) -> ApiResult<ImageContent> {
        state.authorize(&auth, Access::Read)?;
        let images = &state.engine.stores.images;
        let record = images.get(id.0)?.ok_or_else(|| image_not_found(id.0))?;
        let bytes = images.content(id.0)?.ok_or_else(|| image_not_found(id.0))?;
        Ok(ImageContent {
            bytes,
            content_type: record.content_type,
        })
    }

    /// Relabel an image
    ///
    /// Moves the image to another class (created if new). The change applies to the next retrain;
    /// existing model versions keep the data they were trained on.
    #[oai(
        path = "/images/:id",
        method = "patch",
        operation_id = "relabelImage",
        tag = "ApiTags::Images"
    )]
    async fn relabel(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
        /// Image id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        id: Path<u64>,
        body: RequiredJson<RelabelRequest>,
    ) -> ApiResult<Json<ImageInfo>> {
        state.authorize(&auth, Access::Write)?;
        let request = body.into_inner();
        let class = validate_class_name(&request.class).map_err(ApiError::from)?;
        let record = state
            .engine
            .stores
            .images
            .relabel(id.0, class)?
            .ok_or_else(|| image_not_found(id.0))?;
        Ok(Json(record.into()))
    }

    /// Delete an image
    ///
    /// Removes the image's metadata and bytes and answers with the deleted metadata. Existing model
    /// versions are not affected.
    #[oai(
        path = "/images/:id",
        method = "delete",
        operation_id = "deleteImage",
        tag = "ApiTags::Images"
    )]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
        /// Image id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        id: Path<u64>,
    ) -> ApiResult<Json<DeletedImage>> {
        state.authorize(&auth, Access::Write)?;
        let record = state
            .engine
            .stores
            .images
            .delete(id.0)?
            .ok_or_else(|| image_not_found(id.0))?;
        Ok(Json(DeletedImage {
            success: true,
            deleted: record.into(),
        }))
    }

    /// Data-set statistics
    ///
    /// Images per class and split, total bytes, uploads per day and mean image size: what the
    /// "dataset distribution" charts draw. Computed from the stored records.
    #[oai(
        path = "/dataset/stats",
        method = "get",
        operation_id = "datasetStats",
        tag = "ApiTags::Dataset"
    )]
    async fn dataset_stats(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
    ) -> ApiResult<Json<DatasetStatsResponse>> {
        state.authorize(&auth, Access::Read)?;
        Ok(Json(state.engine.stores.images.stats()?.into()))
    }
}
