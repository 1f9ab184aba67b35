mod schema;

pub use schema::*;
use std::sync::Arc;

use futures::{stream, StreamExt};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Payload;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::{ApiResponse, OpenApi};
use sprig_store::ImageFilter;

use super::auth::ApiAuth;
use super::body::RequiredJson;
use super::error::{ApiError, ApiResult};
use super::paging::{page_request, PageNumber, PerPage};
use super::predict::{require_files, UploadedFile};
use super::ApiTags;
use crate::state::AppState;

pub struct ImagesApi;

/// The original bytes of an image, served with its detected content type.
pub struct ImageContent {
    pub bytes: Vec<u8>,
    pub content_type: String,
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
        _auth: ApiAuth,
        /// Class of a raw-body image (required then; a multipart form names it in its `class` field).
        #[oai(name = "class")]
        raw_class: Query<Option<String>>,
        /// File name recorded for a raw-body image (multipart parts carry their own).
        filename: Query<Option<String>>,
        body: UploadBody,
    ) -> ApiResult<Json<UploadResponse>> {
        let (class, images): (String, Vec<UploadedFile>) = match body {
            UploadBody::Multipart(form) => {
                require_files(&form.files)?;
                (
                    form.class,
                    form.files.into_iter().map(UploadedFile::Part).collect(),
                )
            }
            // No class is an invalid one (422, like any other class the rules refuse).
            UploadBody::Raw(bytes) => (
                raw_class.0.unwrap_or_default(),
                vec![UploadedFile::Raw(filename.0, bytes.0)],
            ),
        };
        let limit = state.config.limits.upload_max_files;
        if images.len() > limit {
            return Err(ApiError::too_many_files(images.len(), limit));
        }
        let max_bytes = state.engine.max_file_bytes();
        let files = stream::iter(images).then(|image| image.incoming(max_bytes));
        let report = state.engine.ingest_many(&class, "upload", files).await?;
        Ok(Json(report.into()))
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
        _auth: ApiAuth,
    ) -> ApiResult<Json<ClassList>> {
        let classes = state.engine.classes()?;
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
        _auth: ApiAuth,
        /// Class name.
        name: Path<String>,
        /// Delete even if fewer than 2 classes with data would remain.
        #[oai(default)]
        force: Query<bool>,
    ) -> ApiResult<Json<DeletedClass>> {
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
        _auth: ApiAuth,
        /// Only this class.
        class: Query<Option<String>>,
        /// Only this split.
        split: Query<Option<SplitName>>,
        /// 1-based page number.
        #[oai(default)]
        page: Query<PageNumber>,
        /// Items per page.
        #[oai(default)]
        per_page: Query<PerPage>,
    ) -> ApiResult<Json<ImagePage>> {
        let filter = ImageFilter {
            class: class.0,
            split: split.0.map(Into::into),
        };
        let request = page_request(page.0, per_page.0);
        let result = state.engine.images(&filter, request)?;
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
        _auth: ApiAuth,
        /// Image id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        id: Path<u64>,
    ) -> ApiResult<Json<ImageInfo>> {
        Ok(Json(state.engine.image(id.0)?.into()))
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
        _auth: ApiAuth,
        /// Image id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        id: Path<u64>,
    ) -> ApiResult<ImageContent> {
        let (record, bytes) = state.engine.image_content(id.0)?;
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
        _auth: ApiAuth,
        /// Image id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        id: Path<u64>,
        body: RequiredJson<RelabelRequest>,
    ) -> ApiResult<Json<ImageInfo>> {
        let request = body.into_inner();
        let record = state.engine.relabel_image(id.0, &request.class)?;
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
        _auth: ApiAuth,
        /// Image id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        id: Path<u64>,
    ) -> ApiResult<Json<DeletedImage>> {
        let record = state.engine.delete_image(id.0)?;
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
        _auth: ApiAuth,
    ) -> ApiResult<Json<DatasetStatsResponse>> {
        Ok(Json(state.engine.dataset_stats()?.into()))
    }
}
