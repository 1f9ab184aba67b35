//! Request and response bodies of the images and dataset operations.

use chrono::{DateTime, Utc};
use poem_openapi::payload::Binary;
use poem_openapi::types::multipart::Upload;
use poem_openapi::types::Example;
use poem_openapi::{ApiRequest, Enum, Multipart, Object};
use sprig_store::{ClassSummary, DatasetStats, ImageRecord, Split};

use sprig_core::{ErrorCode, IngestOutcome, IngestReport};

use crate::api::error::{ApiError, Code, ErrorDetail};

/// `multipart/form-data`: a `class` field and one or more `files`. Other fields are refused.
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct UploadForm {
    /// Class name: 1-64 of a-z, 0-9, `_`, `-`, starting with a letter or digit. Created on first use.
    pub class: String,
    /// The images.
    #[oai(validator(min_items = 1))]
    pub files: Vec<Upload>,
}

/// The labelled images: a `multipart/form-data` form with a `class` field and repeated `files`
/// fields, or one image's bytes as an `application/octet-stream` body with the class in the
/// `class` query parameter (and the file name in `filename`).
#[derive(ApiRequest)]
pub enum UploadBody {
    Multipart(UploadForm),
    #[oai(content_type = "application/octet-stream")]
    Raw(Binary<Vec<u8>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SplitName {
    Train,
    Validation,
}

impl From<Split> for SplitName {
    fn from(split: Split) -> Self {
        match split {
            Split::Train => SplitName::Train,
            Split::Validation => SplitName::Validation,
        }
    }
}

impl From<SplitName> for Split {
    fn from(split: SplitName) -> Self {
        match split {
            SplitName::Train => Split::Train,
            SplitName::Validation => Split::Validation,
        }
    }
}

/// Metadata of a stored image. Its `split` is assigned from the content hash, so it never changes.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct ImageInfo {
    pub id: u64,
    pub class: String,
    pub width: u32,
    pub height: u32,
    /// Detected format (`jpeg`, `png`, `gif`, `bmp`, `webp`).
    pub format: String,
    pub content_type: String,
    pub byte_size: u64,
    /// SHA-256 of the original bytes.
    pub sha256: String,
    /// `upload`, `import` or `demo`.
    pub source: String,
    pub filename: Option<String>,
    // Described on the struct: a described reference becomes `allOf: [$ref, {description}]`,
    // which some generators (openapi-python-client) cannot read for enums.
    pub split: SplitName,
    pub created_at: DateTime<Utc>,
}

impl Example for ImageInfo {
    fn example() -> Self {
        Self {
            id: 61,
            class: "bean_rust".into(),
            width: 500,
            height: 500,
            format: "jpeg".into(),
            content_type: "image/jpeg".into(),
            byte_size: 48_213,
            sha256: "9f2c0e4b1d6a8c3e5f7a9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e".into(),
            source: "upload".into(),
            filename: Some("leaf.jpg".into()),
            split: SplitName::Train,
            created_at: DateTime::from_timestamp(1_764_066_600, 0).unwrap_or_default(),
        }
    }
}

impl From<ImageRecord> for ImageInfo {
    fn from(r: ImageRecord) -> Self {
        Self {
            id: r.id,
            class: r.class,
            width: r.width,
            height: r.height,
            format: r.format,
            content_type: r.content_type,
            byte_size: r.byte_size,
            sha256: r.sha256,
            source: r.source,
            filename: r.filename,
            split: r.split.into(),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum UploadStatus {
    Stored,
    Duplicate,
    Rejected,
}

/// What happened to one uploaded file: `image` is the stored image (for `duplicate`: the image
/// that already had this content); `error` says why a `rejected` file was rejected.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UploadItem {
    pub index: u64,
    pub filename: Option<String>,
    pub status: UploadStatus,
    // `image` and `error` are described on the struct (see `ImageInfo::split`).
    pub image: Option<ImageInfo>,
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct UploadResponse {
    /// True when no file was rejected.
    pub success: bool,
    pub class: String,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// One item per file, in request order.
    pub items: Vec<UploadItem>,
}

impl Example for UploadResponse {
    fn example() -> Self {
        let rejected = ErrorDetail {
            code: Code(ErrorCode::CorruptImage),
            message: "the image could not be decoded".into(),
            job_id: None,
        };
        Self {
            success: false,
            class: "bean_rust".into(),
            stored: 1,
            duplicates: 0,
            rejected: 1,
            items: vec![
                UploadItem {
                    index: 0,
                    filename: Some("leaf.jpg".into()),
                    status: UploadStatus::Stored,
                    image: Some(ImageInfo::example()),
                    error: None,
                },
                UploadItem {
                    index: 1,
                    filename: Some("broken.jpg".into()),
                    status: UploadStatus::Rejected,
                    image: None,
                    error: Some(rejected),
                },
            ],
        }
    }
}

impl From<IngestReport> for UploadResponse {
    fn from(report: IngestReport) -> Self {
        let (stored, duplicates, rejected) =
            (report.stored(), report.duplicates(), report.rejected());
        let items = report
            .files
            .into_iter()
            .enumerate()
            .map(|(index, file)| {
                let (status, image, error) = match file.outcome {
                    IngestOutcome::Stored(record) => {
                        (UploadStatus::Stored, Some(record.into()), None)
                    }
                    IngestOutcome::Duplicate(record) => {
                        (UploadStatus::Duplicate, Some(record.into()), None)
                    }
                    IngestOutcome::Rejected(error) => (
                        UploadStatus::Rejected,
                        None,
                        Some(ApiError::from(error).detail()),
                    ),
                };
                UploadItem {
                    index: index as u64,
                    filename: file.filename,
                    status,
                    image,
                    error,
                }
            })
            .collect();
        Self {
            success: rejected == 0,
            class: report.class,
            stored,
            duplicates,
            rejected,
            items,
        }
    }
}

/// Body of `PATCH /api/images/{id}`.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example, deny_unknown_fields)]
pub struct RelabelRequest {
    /// The new class name.
    pub class: String,
}

impl Example for RelabelRequest {
    fn example() -> Self {
        Self {
            class: "healthy".into(),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeletedImage {
    pub success: bool,
    pub deleted: ImageInfo,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeletedClass {
    pub success: bool,
    pub class: String,
    /// Images deleted.
    pub deleted: u64,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ClassInfo {
    pub name: String,
    pub images: u64,
    pub train: u64,
    pub validation: u64,
    pub bytes: u64,
}

impl From<ClassSummary> for ClassInfo {
    fn from(c: ClassSummary) -> Self {
        Self {
            name: c.name,
            images: c.images,
            train: c.train,
            validation: c.validation,
            bytes: c.bytes,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ClassList {
    pub classes: Vec<ClassInfo>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub count: u64,
}

/// Data-set statistics for the distribution charts.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DatasetStatsResponse {
    pub total_images: u64,
    pub total_bytes: u64,
    pub mean_width: f64,
    pub mean_height: f64,
    pub mean_bytes: f64,
    /// Images per class and split.
    pub classes: Vec<ClassInfo>,
    pub uploads_per_day: Vec<DayCount>,
}

impl From<DatasetStats> for DatasetStatsResponse {
    fn from(s: DatasetStats) -> Self {
        Self {
            total_images: s.total_images,
            total_bytes: s.total_bytes,
            mean_width: s.mean_width,
            mean_height: s.mean_height,
            mean_bytes: s.mean_bytes,
            classes: s.classes.into_iter().map(Into::into).collect(),
            uploads_per_day: s
                .uploads_per_day
                .into_iter()
                .map(|(date, count)| DayCount { date, count })
                .collect(),
        }
    }
}

crate::api::paging::page_type!(ImagePage, ImageInfo);
