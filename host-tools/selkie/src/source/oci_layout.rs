//! OCI image layout directories (`oci-layout`, `index.json`, `blobs/sha256/…`).

use super::{fetch_verified, manifest_layers, resolve_manifest, BlobSource, Image, CONFIG_LIMIT};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::ImageRef;
use anyhow::{bail, Context, Result};
use oci_spec::image::ImageIndex;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Blobs read from `DIR/blobs/<alg>/<hex>`.
pub struct OciLayout {
    dir: PathBuf,
}

impl OciLayout {
    pub fn new(dir: &Path) -> OciLayout {
        OciLayout { dir: dir.to_path_buf() }
    }
}

impl BlobSource for OciLayout {
    fn open(&self, locator: &str) -> Result<Box<dyn Read + Send + '_>> {
        // Parsing first means a hostile digest can never name a path outside blobs/.
        let d = Digest::parse(locator)?;
        let path = self.dir.join("blobs").join("sha256").join(d.hex());
        let f = File::open(&path).with_context(|| format!("opening blob {}", path.display()))?;
        Ok(Box::new(std::io::BufReader::with_capacity(256 << 10, f)))
    }
}

pub(super) fn open(reference: &ImageRef, dir: &Path, tag: Option<&str>, platform: &Platform) -> Result<Image> {
    let top = top_descriptor(dir, tag, platform)?;
    let src = OciLayout::new(dir);
    let (manifest_digest, manifest) = resolve_manifest(&src, &top, platform)?;
    let (config_digest, config_raw) = fetch_verified(&src, manifest.config(), "config", CONFIG_LIMIT)?;
    let layers = manifest_layers(&manifest)?;
    Image::new(reference, Some(manifest_digest), config_digest, config_raw, layers, Box::new(src))
}

/// The descriptor `index.json` has for `tag` (or its only entry, or the one for `platform`).
pub fn top_descriptor(dir: &Path, tag: Option<&str>, platform: &Platform) -> Result<oci_spec::image::Descriptor> {
    let layout_file = dir.join("oci-layout");
    if !layout_file.is_file() {
        bail!("{} is not an OCI image layout (no oci-layout file)", dir.display());
    }
    let index_path = dir.join("index.json");
    let index = ImageIndex::from_file(&index_path)
        .with_context(|| format!("reading {}", index_path.display()))?;
    let tag_of = |d: &oci_spec::image::Descriptor| {
        d.annotations().as_ref().and_then(|a| a.get("org.opencontainers.image.ref.name").cloned())
    };
    let top = match tag {
        Some(t) => index
            .manifests()
            .iter()
            .find(|d| tag_of(d).as_deref() == Some(t))
            .cloned()
            .with_context(|| {
                let tags: Vec<String> = index.manifests().iter().filter_map(tag_of).collect();
                format!("{} has no tag {t:?}; tags: {}", index_path.display(), tags.join(", "))
            })?,
        None => match index.manifests().as_slice() {
            [one] => one.clone(),
            [] => bail!("{} lists no images", index_path.display()),
            // Several entries without a tag: treat the index itself as a platform index.
            _ => super::select_platform(&index, platform)
                .with_context(|| format!("{} (give a tag as oci:DIR:TAG)", index_path.display()))?,
        },
    };
    Ok(top)
}
