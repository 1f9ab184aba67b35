//! Views of a prepared image: the augmented views training caches (flip, small rotation, zoom,
//! shift of the plain crop, drawn from the photo's content seed and the view number), the mirror
//! image, and the test-time views a version answers from.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::preprocess::{prepare, PreparedImage, INPUT_SIZE};
use crate::rng::SplitMix;

/// The view that is the plain view mirrored left to right (test-time flipping).
pub const MIRROR_VIEW: u32 = u32::MAX;

/// The seed of a photo's augmented views: the leading 64 bits of its bytes' SHA-256 (hex), so
/// that a photo gets the same views in every run and wherever it is answered.
pub fn content_seed(sha256_hex: &str) -> u64 {
    sha256_hex
        .get(..16)
        .and_then(|head| u64::from_str_radix(head, 16).ok())
        .unwrap_or(0)
}

/// One deterministic view of an image, prepared for the network: [`view_of`] its plain crop
/// under `seed`.
pub fn augment(image: &RgbImage, seed: u64, view: u32) -> PreparedImage {
    view_of(&prepare(image).seeded(seed), view)
}

/// View `view` of a prepared image: 0 is the image itself, [`MIRROR_VIEW`] its mirror image, any
/// other an affine warp of it (flip, rotation up to 15°, zoom up to 15 %, shift up to 10 %) drawn
/// from `(image.seed(), view)`.
pub fn view_of(image: &PreparedImage, view: u32) -> PreparedImage {
    match view {
        0 => image.clone(),
        MIRROR_VIEW => image.mirrored(),
        _ => warp(image, view),
    }
}

fn warp(image: &PreparedImage, view: u32) -> PreparedImage {
    let mut rng = SplitMix::new(image.seed() ^ u64::from(view).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let flip = rng.next_unit() < 0.5;
    let angle = (rng.next_unit() * 2.0 - 1.0) * 15f64.to_radians();
    let zoom = 1.0 + (rng.next_unit() * 2.0 - 1.0) * 0.15;
    let shift_x = (rng.next_unit() * 2.0 - 1.0) * 0.1;
    let shift_y = (rng.next_unit() * 2.0 - 1.0) * 0.1;

    let base = image.pixels();
    let size = INPUT_SIZE as f64;
    let centre = size / 2.0;
    let (sin, cos) = angle.sin_cos();
    let mut pixels = vec![0u8; base.len()];
    for y in 0..INPUT_SIZE {
        for x in 0..INPUT_SIZE {
            // Map the output pixel back into the source view (inverse transform).
            let dx = (x as f64 - centre) / zoom - shift_x * size;
            let dy = (y as f64 - centre) / zoom - shift_y * size;
            let mut sx = cos * dx + sin * dy + centre;
            let sy = -sin * dx + cos * dy + centre;
            if flip {
                sx = size - 1.0 - sx;
            }
            let rgb = sample_nearest_edge(base, sx, sy);
            pixels[(y * INPUT_SIZE + x) * 3..][..3].copy_from_slice(&rgb);
        }
    }
    PreparedImage::from_pixels(pixels)
        .expect("a warp keeps the input size")
        .seeded(image.seed())
}

/// Bilinear sample with edge clamping (Keras' `fill_mode="nearest"`).
fn sample_nearest_edge(pixels: &[u8], x: f64, y: f64) -> [u8; 3] {
    let max = (INPUT_SIZE - 1) as f64;
    let (x, y) = (x.clamp(0.0, max), y.clamp(0.0, max));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(INPUT_SIZE - 1), (y0 + 1).min(INPUT_SIZE - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let at = |px: usize, py: usize, c: usize| f64::from(pixels[(py * INPUT_SIZE + px) * 3 + c]);
    let mut out = [0u8; 3];
    for (c, value) in out.iter_mut().enumerate() {
        let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
        let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
        *value = (top * (1.0 - fy) + bottom * fy).round() as u8;
    }
    out
}

/// The views a version classifies each image in besides the plain one; its answer is the
/// geometric mean of its answers to all of them (the softmax of their mean logits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestTimeViews {
    /// The mirror image.
    pub flip: bool,
    /// Augmented views 1..=`augmented`, the ones training caches for the photo.
    pub augmented: u32,
}

impl TestTimeViews {
    /// The extra views, in the order a classifier's feature rows hold them after the plain one.
    pub fn extra(self) -> impl Iterator<Item = u32> {
        (1..=self.augmented).chain(self.flip.then_some(MIRROR_VIEW))
    }

    /// Views per image, the plain one included: forward passes per prediction.
    pub fn count(self) -> usize {
        1 + self.augmented as usize + usize::from(self.flip)
    }

    /// Whether features cached for these views include every view of `other`.
    pub fn covers(self, other: TestTimeViews) -> bool {
        (self.flip || !other.flip) && self.augmented >= other.augmented
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo() -> RgbImage {
        RgbImage::from_fn(256, 300, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 251) as u8])
        })
    }

    #[test]
    fn augmented_views_are_deterministic_and_differ_from_the_plain_view() {
        let photo = photo();
        let plain = augment(&photo, 7, 0);
        assert_eq!(plain, prepare(&photo).seeded(7));
        let first = augment(&photo, 7, 1);
        assert_eq!(first, augment(&photo, 7, 1));
        assert_ne!(first.pixels(), plain.pixels());
        assert_ne!(first.pixels(), augment(&photo, 8, 1).pixels());
        assert_eq!(augment(&photo, 7, MIRROR_VIEW), plain.mirrored());
    }

    /// A served image's views are the views training cached for the photo: the same warp of the
    /// same crop, once the image carries the photo's content seed.
    #[test]
    fn a_seeded_image_has_the_views_training_draws() {
        let photo = photo();
        let seed = content_seed("a3f0c2d4e5b6978812345678");
        assert_eq!(seed, 0xa3f0_c2d4_e5b6_9788);
        let served = prepare(&photo).seeded(seed);
        for view in [1, 2, 5] {
            assert_eq!(view_of(&served, view), augment(&photo, seed, view));
        }
        assert_ne!(
            view_of(&prepare(&photo), 1).pixels(),
            augment(&photo, seed, 1).pixels()
        );
    }

    #[test]
    fn test_time_views_list_their_views_in_row_order() {
        let views = TestTimeViews {
            flip: true,
            augmented: 2,
        };
        assert_eq!(views.extra().collect::<Vec<_>>(), [1, 2, MIRROR_VIEW]);
        assert_eq!(views.count(), 4);
        assert!(views.covers(TestTimeViews::default()));
        assert!(!TestTimeViews::default().covers(views));
        assert!(!TestTimeViews {
            flip: false,
            augmented: 3
        }
        .covers(views));
    }
}
