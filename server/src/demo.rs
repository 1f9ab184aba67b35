//! The demo data set (`data/beans-sample/train`, MIT, iBean), embedded so a fresh `sprig serve`
//! anywhere can import it and train version 1.

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
