//! Image decoding (strict, bounded) and the one preprocessing function training and prediction share.
//!
//! Preprocessing reproduces the reference pipeline of the shipped weights: resize the short side
//! to 256 and centre-crop 224×224. Both steps are done at once by resizing the centred source
//! square that maps onto the crop (224/256 of the short side) straight to 224×224 with a bilinear
//! convolution filter (`fast_image_resize`, which like PIL widens the filter when downscaling).
//! The model then normalises `(pixel - zero_point) / 128` with the backbone's zero point.

use std::io::Cursor;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;

/// Side of the square network input.
pub const INPUT_SIZE: usize = 224;
/// Short side the reference pipeline resizes to before the centre crop.
const RESIZE_SHORT_SIDE: f64 = 256.0;

/// The image formats sprig accepts, identified from content, never from a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    Jpeg,
    Png,
    Gif,
    Bmp,
    Webp,
}

impl ImageKind {
    pub fn mime_type(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
            ImageKind::Gif => "image/gif",
            ImageKind::Bmp => "image/bmp",
            ImageKind::Webp => "image/webp",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "jpeg",
            ImageKind::Png => "png",
            ImageKind::Gif => "gif",
            ImageKind::Bmp => "bmp",
            ImageKind::Webp => "webp",
        }
    }

    /// Identifies the format from the file's magic bytes.
    pub fn sniff(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.is_empty() {
            return Err(DecodeError::Empty);
        }
        match image::guess_format(bytes) {
            Ok(ImageFormat::Jpeg) => Ok(ImageKind::Jpeg),
            Ok(ImageFormat::Png) => Ok(ImageKind::Png),
            Ok(ImageFormat::Gif) => Ok(ImageKind::Gif),
            Ok(ImageFormat::Bmp) => Ok(ImageKind::Bmp),
            Ok(ImageFormat::WebP) => Ok(ImageKind::Webp),
            _ => Err(DecodeError::UnsupportedFormat),
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            ImageKind::Jpeg => ImageFormat::Jpeg,
            ImageKind::Png => ImageFormat::Png,
            ImageKind::Gif => ImageFormat::Gif,
            ImageKind::Bmp => ImageFormat::Bmp,
            ImageKind::Webp => ImageFormat::WebP,
        }
    }
}

/// Bounds checked from the header before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeLimits {
    /// Largest accepted width × height.
    pub max_pixels: u64,
    /// Largest accepted width or height.
    pub max_dimension: u32,
    /// Cap on the decoder's allocations, in bytes.
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: 40_000_000,
            max_dimension: 12_000,
            max_alloc_bytes: 512 * 1024 * 1024,
        }
    }
}

/// A fully decoded, orientation-corrected RGB image.
pub struct DecodedImage {
    pub kind: ImageKind,
    pub rgb: RgbImage,
}

impl DecodedImage {
    pub fn width(&self) -> u32 {
        self.rgb.width()
    }
    pub fn height(&self) -> u32 {
        self.rgb.height()
    }
}

/// Decodes `bytes` strictly: known format by content, dimensions within `limits` (checked from the
/// header), the whole file present and covering the size its header declares (a truncated JPEG,
/// or one whose header claims more pixels than its data holds, is refused even though decoders
/// pad it; so is a GIF whose first frame does not cover its canvas), and EXIF orientation applied.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedImage, DecodeError> {
    let kind = ImageKind::sniff(bytes)?;
    let jpeg_end = match kind {
        ImageKind::Jpeg => Some(jpeg_end_of_image(bytes).ok_or(DecodeError::Truncated)?),
        _ => None,
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), kind.format());
    let mut decoder_limits = Limits::default();
    decoder_limits.max_alloc = Some(limits.max_alloc_bytes);
    decoder_limits.max_image_width = Some(limits.max_dimension);
    decoder_limits.max_image_height = Some(limits.max_dimension);
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt("image has no pixels".into()));
    }
    check_size(width, height, limits)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = match (kind, jpeg_end) {
        (ImageKind::Jpeg, Some(end)) => {
            DynamicImage::ImageRgb8(decode_jpeg_strictly(&bytes[..end], width, height)?)
        }
        (ImageKind::Gif, _) => {
            gif_frame_covers_canvas(bytes)?;
            DynamicImage::from_decoder(decoder).map_err(classify)?
        }
        _ => DynamicImage::from_decoder(decoder).map_err(classify)?,
    };
    image.apply_orientation(orientation);
    Ok(DecodedImage {
        kind,
        rgb: image.into_rgb8(),
    })
}

/// Decodes a JPEG whose header said `width`×`height`, refusing what `image`'s lenient decoder
/// would pad: entropy-coded data that ends before the declared rows do (a patched or lying
/// header), and markers where none may be. `data` ends where the end-of-image marker was: a
/// decoder that meets that marker pads the missing rows, while one that runs out of bytes fails
/// in strict mode.
fn decode_jpeg_strictly(data: &[u8], width: u32, height: u32) -> Result<RgbImage, DecodeError> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(width as usize)
        .set_max_height(height as usize)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(data), options);
    let pixels = decoder.decode().map_err(|error| {
        let message = error.to_string();
        if message.contains("Premature end")
            || message.contains("xhausted")
            || message.contains("No more bytes")
        {
            DecodeError::Truncated
        } else {
            DecodeError::Corrupt(message)
        }
    })?;
    RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| DecodeError::Corrupt("decoded pixels do not match the header".into()))
}

/// A GIF's canvas comes from its header; a first frame smaller than it leaves the rest to be
/// invented (35 bytes can claim a 12000×3333 canvas).
fn gif_frame_covers_canvas(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options
        .read_info(Cursor::new(bytes))
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let (width, height) = (decoder.width(), decoder.height());
    match decoder.next_frame_info() {
        Ok(Some(frame))
            if frame.left == 0
                && frame.top == 0
                && frame.width == width
                && frame.height == height =>
        {
            Ok(())
        }
        Ok(Some(_)) | Ok(None) => Err(DecodeError::Truncated),
        Err(e) => Err(DecodeError::Corrupt(e.to_string())),
    }
}

fn check_size(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), DecodeError> {
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_dimension || height > limits.max_dimension || pixels > limits.max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

fn classify(error: image::ImageError) -> DecodeError {
    match error {
        image::ImageError::Limits(_) => DecodeError::LimitExceeded(error.to_string()),
        image::ImageError::Unsupported(_) => DecodeError::UnsupportedFormat,
        image::ImageError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Truncated
        }
        other => DecodeError::Corrupt(other.to_string()),
    }
}

/// Where a JPEG's end-of-image marker is, if its entropy-coded data is followed by one.
///
/// Walks the marker segments up to the first start-of-scan (so an EOI inside an embedded EXIF
/// thumbnail does not count), then looks for `FF D9` after it. Inside scan data every `FF` byte is
/// stuffed (`FF 00`) or a restart marker, so the first `FF D9` there is the real end.
fn jpeg_end_of_image(bytes: &[u8]) -> Option<usize> {
    let mut pos = 2; // after SOI
    while pos + 4 <= bytes.len() {
        if bytes[pos] != 0xFF {
            return None;
        }
        let marker = bytes[pos + 1];
        if marker == 0xFF {
            pos += 1; // fill byte
            continue;
        }
        let length = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        if marker == 0xDA {
            let scan = pos + 2 + length;
            return bytes
                .get(scan..)?
                .windows(2)
                .position(|w| w == [0xFF, 0xD9])
                .map(|at| scan + at);
        }
        pos += 2 + length;
    }
    None
}

/// A network-ready image: 224×224 RGB bytes, row-major HWC.
///
/// It carries the seed of its photo's augmented views (see [`crate::views`]): the content seed
/// of the photo's bytes where the caller knows them, so that a version answering from augmented
/// views serves the views its training cached; 0 otherwise.
#[derive(Clone, PartialEq, Eq)]
pub struct PreparedImage {
    pixels: Vec<u8>,
    seed: u64,
}

impl std::fmt::Debug for PreparedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreparedImage({}x{})", INPUT_SIZE, INPUT_SIZE)
    }
}

impl PreparedImage {
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The seed its augmented views derive from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The same image with its augmented views derived from `seed`.
    pub fn seeded(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    /// The image mirrored left to right.
    pub fn mirrored(&self) -> Self {
        let row = INPUT_SIZE * 3;
        let mut pixels = Vec::with_capacity(self.pixels.len());
        for line in self.pixels.chunks_exact(row) {
            for pixel in line.chunks_exact(3).rev() {
                pixels.extend_from_slice(pixel);
            }
        }
        Self {
            pixels,
            seed: self.seed,
        }
    }

    pub fn from_pixels(pixels: Vec<u8>) -> Option<Self> {
        (pixels.len() == INPUT_SIZE * INPUT_SIZE * 3).then_some(Self { pixels, seed: 0 })
    }
}

/// Short side to 256, centre crop 224 — done as one bilinear resize of the matching source square.
pub fn prepare(image: &RgbImage) -> PreparedImage {
    let (w, h) = (f64::from(image.width()), f64::from(image.height()));
    let side = w.min(h) * INPUT_SIZE as f64 / RESIZE_SHORT_SIDE;
    let crop = Crop {
        left: (w - side) / 2.0,
        top: (h - side) / 2.0,
        side,
    };
    resize_crop(image, crop)
}

struct Crop {
    left: f64,
    top: f64,
    side: f64,
}

fn resize_crop(image: &RgbImage, crop: Crop) -> PreparedImage {
    let mut dst = RgbImage::new(INPUT_SIZE as u32, INPUT_SIZE as u32);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(crop.left, crop.top, crop.side, crop.side);
    Resizer::new()
        .resize(image, &mut dst, &options)
        .expect("RGB to RGB resize with an in-bounds crop cannot fail");
    PreparedImage {
        pixels: dst.into_raw(),
        seed: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_bytes(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&image)
            .unwrap();
        out
    }

    #[test]
    fn decodes_and_prepares_a_jpeg() {
        let bytes = jpeg_bytes(300, 200);
        let decoded = decode(&bytes, &DecodeLimits::default()).unwrap();
        assert_eq!(
            (decoded.kind, decoded.width(), decoded.height()),
            (ImageKind::Jpeg, 300, 200)
        );
        assert_eq!(
            prepare(&decoded.rgb).pixels().len(),
            INPUT_SIZE * INPUT_SIZE * 3
        );
    }

    #[test]
    fn refuses_truncated_jpeg_that_the_decoder_would_pad() {
        let bytes = jpeg_bytes(64, 64);
        let truncated = &bytes[..bytes.len() * 2 / 3];
        assert!(matches!(
            decode(truncated, &DecodeLimits::default()),
            Err(DecodeError::Truncated)
        ));
    }

    #[test]
    fn refuses_a_jpeg_whose_header_claims_more_rows_than_its_data_holds() {
        let mut bytes = jpeg_bytes(256, 256);
        let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bytes[sof + 5..sof + 7].copy_from_slice(&6000u16.to_be_bytes());
        bytes[sof + 7..sof + 9].copy_from_slice(&6000u16.to_be_bytes());
        assert!(matches!(
            decode(&bytes, &DecodeLimits::default()),
            Err(DecodeError::Truncated)
        ));
        // A smaller lie (256 rows claimed as 300) too.
        let mut bytes = jpeg_bytes(256, 256);
        bytes[sof + 5..sof + 7].copy_from_slice(&300u16.to_be_bytes());
        assert!(matches!(
            decode(&bytes, &DecodeLimits::default()),
            Err(DecodeError::Truncated)
        ));
    }

    #[test]
    fn refuses_a_gif_whose_frame_does_not_cover_its_canvas() {
        let mut gif = b"GIF89a".to_vec();
        gif.extend_from_slice(&12000u16.to_le_bytes());
        gif.extend_from_slice(&3333u16.to_le_bytes());
        gif.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
        gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3B]);
        assert!(matches!(
            decode(&gif, &DecodeLimits::default()),
            Err(DecodeError::Truncated)
        ));
    }

    /// The strict JPEG path must not refuse real photos: every JPEG shipped in `data/` and, where
    /// present (CI), the 900 training photos in `../shared/datasets/beans`.
    #[test]
    fn every_real_photo_decodes_strictly() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut stack = vec![root.join("data"), root.join("../shared/datasets/beans")];
        let mut decoded = 0;
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "jpg" || e == "jpeg") {
                    let bytes = std::fs::read(&path).unwrap();
                    if let Err(error) = decode(&bytes, &DecodeLimits::default()) {
                        panic!("{}: {error}", path.display());
                    }
                    decoded += 1;
                }
            }
        }
        assert!(decoded >= 60, "only {decoded} photos found");
    }

    #[test]
    fn refuses_text_and_empty_input() {
        assert!(matches!(
            ImageKind::sniff(b"hello, world"),
            Err(DecodeError::UnsupportedFormat)
        ));
        assert!(matches!(ImageKind::sniff(b""), Err(DecodeError::Empty)));
    }

    #[test]
    fn refuses_oversized_dimensions_from_the_header() {
        let bytes = jpeg_bytes(64, 48);
        let limits = DecodeLimits {
            max_pixels: 1000,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode(&bytes, &limits),
            Err(DecodeError::TooLarge {
                width: 64,
                height: 48,
                ..
            })
        ));
    }
}
