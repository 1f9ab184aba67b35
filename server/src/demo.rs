//! What a fresh `sprig serve` starts from, embedded so it works anywhere: the demo data set
//! (`data/beans-sample/train`, MIT, iBean) it imports, and the first version it serves
//! (`models/first-version/`, trained on 900 photos of the same licensed set).

use rust_embed::RustEmbed;
use sprig_core::DemoImage;

#[derive(RustEmbed)]
#[folder = "../data/beans-sample/train"]
struct DemoData;

/// Every embedded demo image, by class directory.
pub fn images() -> Vec<DemoImage> {
    let mut images: Vec<DemoImage> = DemoData::iter()
        .filter_map(|path| {
            let (class, filename) = path.split_once('/')?;
            let file = DemoData::get(&path)?;
            Some(DemoImage {
                class: class.to_string(),
                filename: filename.to_string(),
                bytes: file.data.into_owned(),
            })
        })
        .collect();
    images.sort_by(|a, b| (&a.class, &a.filename).cmp(&(&b.class, &b.filename)));
    images
}

/// The shipped first version: a bundle (`sprig models export --format bundle`) made by
/// `scripts/make-first-version.sh`; provenance and evaluation in `models/first-version/README.md`.
pub fn first_version() -> &'static [u8] {
    include_bytes!("../../models/first-version/beans-mobilenet_v2.bundle")
}
