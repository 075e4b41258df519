//! Image sources: where an image's manifest, config and layer blobs come from, and the
//! resolution every source shares (index → platform → manifest → config → layers), with
//! every blob checked against its descriptor's size and digest.

mod docker_archive;
mod memory;
mod oci_layout;
pub mod registry;

use crate::digest::{read_verified, Digest, VerifyingReader};
use crate::platform::Platform;
use crate::reference::ImageRef;
use anyhow::{bail, Context, Result};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use std::io::Read;

pub use docker_archive::DockerArchive;
pub use oci_layout::{top_descriptor, OciLayout};
pub use memory::MemorySource;

/// Largest manifest or index accepted.
pub const MANIFEST_LIMIT: u64 = 4 << 20;
/// Largest config blob accepted.
pub const CONFIG_LIMIT: u64 = 8 << 20;

/// Opens raw blob bytes for a source. `locator` is a digest string for content-addressed
/// sources, or a path inside a docker-archive.
pub trait BlobSource: Send + Sync {
    fn open(&self, locator: &str) -> Result<Box<dyn Read + Send + '_>>;
}

/// One layer as the image describes it.
#[derive(Clone, Debug)]
pub struct Layer {
    /// 0-based position, bottom first.
    pub index: usize,
    pub media_type: String,
    /// The blob digest, when the source is content-addressed.
    pub digest: Option<Digest>,
    pub size: Option<u64>,
    /// The digest of the uncompressed tar, from the config's rootfs.diff_ids.
    pub diff_id: Digest,
    pub locator: String,
}

/// A resolved image: verified manifest and config, and the layers to stream.
pub struct Image {
    pub reference: ImageRef,
    /// Digest of the image manifest (None for legacy docker-archives, which have none).
    pub manifest_digest: Option<Digest>,
    pub config_digest: Digest,
    pub config_raw: Vec<u8>,
    pub config: ImageConfiguration,
    pub layers: Vec<Layer>,
    /// The platform the image is for, as `os/arch[/variant]`.
    pub platform: String,
    source: Box<dyn BlobSource>,
}

impl Image {
    /// Opens and resolves `reference` for `platform`.
    pub fn open(reference: &ImageRef, platform: &Platform) -> Result<Image> {
        let img = match reference {
            ImageRef::OciLayout { dir, tag } => oci_layout::open(reference, dir, tag.as_deref(), platform),
            ImageRef::DockerArchive { file, tag } => {
                docker_archive::open(reference, file, tag.as_deref(), platform)
            }
            ImageRef::Registry { reference: r } => registry::open(reference, r, platform),
        }
        .with_context(|| format!("reading image {reference}"))?;
        let (os, arch) = (img.config.os().to_string(), img.config.architecture().to_string());
        if !platform.matches(&os, &arch, img.config.variant().as_deref()) {
            bail!("image {reference} is for {}, not {platform}", img.platform);
        }
        Ok(img)
    }

    /// A name for layer `l` in messages: `layer 2/5 (sha256:…)`.
    pub fn layer_label(&self, l: &Layer) -> String {
        format!(
            "layer {}/{} ({})",
            l.index + 1,
            self.layers.len(),
            l.digest.as_ref().map(|d| d.to_string()).unwrap_or_else(|| l.locator.clone())
        )
    }

    /// Opens layer `l`'s blob as stored (maybe compressed), verifying size and digest as it
    /// streams when the source is content-addressed.
    pub fn open_layer(&self, l: &Layer) -> Result<Box<dyn Read + Send + '_>> {
        let raw = self.source.open(&l.locator).with_context(|| self.layer_label(l))?;
        Ok(match &l.digest {
            Some(d) => Box::new(VerifyingReader::new(raw, d.clone(), l.size, self.layer_label(l))),
            None => raw,
        })
    }

    /// Opens layer `l`'s blob without checking it: only for a pass over a layer that an
    /// earlier pass verified.
    pub fn open_layer_unverified(&self, l: &Layer) -> Result<Box<dyn Read + Send + '_>> {
        self.source.open(&l.locator).with_context(|| self.layer_label(l))
    }

    /// The image's runtime config (Entrypoint, Cmd, Env, ...), if it has one.
    pub fn runtime_config(&self) -> Option<&oci_spec::image::Config> {
        self.config.config().as_ref()
    }

    pub(crate) fn new(
        reference: &ImageRef,
        manifest_digest: Option<Digest>,
        config_digest: Digest,
        config_raw: Vec<u8>,
        layers: Vec<(String, Option<Digest>, Option<u64>, String)>,
        source: Box<dyn BlobSource>,
    ) -> Result<Image> {
        let config = ImageConfiguration::from_reader(&config_raw[..])
            .with_context(|| format!("config blob {config_digest} is not an image config"))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != layers.len() {
            bail!(
                "config {config_digest} lists {} diff_ids but the manifest has {} layers",
                diff_ids.len(),
                layers.len()
            );
        }
        let layers = layers
            .into_iter()
            .zip(diff_ids)
            .enumerate()
            .map(|(index, ((media_type, digest, size, locator), diff_id))| {
                Ok(Layer {
                    index,
                    media_type,
                    digest,
                    size,
                    diff_id: Digest::parse(diff_id).with_context(|| format!("diff_id of layer {}", index + 1))?,
                    locator,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let platform = match config.variant() {
            Some(v) => format!("{}/{}/{v}", config.os(), config.architecture()),
            None => format!("{}/{}", config.os(), config.architecture()),
        };
        Ok(Image {
            reference: reference.clone(),
            manifest_digest,
            config_digest,
            config_raw,
            config,
            layers,
            platform,
            source,
        })
    }
}

/// Fetches a descriptor's blob from `src`, verified, within `limit` bytes.
pub(crate) fn fetch_verified(src: &dyn BlobSource, d: &Descriptor, what: &str, limit: u64) -> Result<(Digest, Vec<u8>)> {
    let digest = Digest::parse(d.digest().as_ref()).with_context(|| format!("{what} descriptor"))?;
    let label = format!("{what} {digest}");
    let r = src.open(&digest.to_string()).with_context(|| label.clone())?;
    let bytes = read_verified(r, &digest, Some(d.size()), &label, limit)?;
    Ok((digest, bytes))
}

pub(crate) fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if media_type.contains("index") || media_type.contains("manifest.list") {
        return true;
    }
    if media_type.contains("manifest") {
        return false;
    }
    // No media type: an index has "manifests", an image manifest has "config".
    serde_json::from_slice::<serde_json::Value>(bytes)
        .map(|v| v.get("manifests").is_some() && v.get("config").is_none())
        .unwrap_or(false)
}

/// Follows `top` (a manifest or an index) to the image manifest for `platform`.
pub(crate) fn resolve_manifest(
    src: &dyn BlobSource,
    top: &Descriptor,
    platform: &Platform,
) -> Result<(Digest, ImageManifest)> {
    let mut desc = top.clone();
    for _ in 0..4 {
        let (digest, bytes) = fetch_verified(src, &desc, "manifest", MANIFEST_LIMIT)?;
        if !is_index(&desc.media_type().to_string(), &bytes) {
            let m = ImageManifest::from_reader(&bytes[..])
                .with_context(|| format!("manifest {digest} is not an image manifest"))?;
            return Ok((digest, m));
        }
        let index = ImageIndex::from_reader(&bytes[..])
            .with_context(|| format!("index {digest} is not an image index"))?;
        desc = select_platform(&index, platform).with_context(|| format!("index {digest}"))?;
    }
    bail!("indexes nest more than 4 deep")
}

/// Picks the manifest for `platform` from an index, or says which platforms it has.
pub(crate) fn select_platform(index: &ImageIndex, platform: &Platform) -> Result<Descriptor> {
    let mut offered = Vec::new();
    for m in index.manifests() {
        match m.platform() {
            Some(p) => {
                let (os, arch) = (p.os().to_string(), p.architecture().to_string());
                if platform.matches(&os, &arch, p.variant().as_deref()) {
                    return Ok(m.clone());
                }
                offered.push(match p.variant() {
                    Some(v) => format!("{os}/{arch}/{v}"),
                    None => format!("{os}/{arch}"),
                });
            }
            None => offered.push("(no platform)".into()),
        }
    }
    bail!(
        "no manifest for platform {platform}; the image has: {}",
        if offered.is_empty() { "nothing".to_string() } else { offered.join(", ") }
    )
}

/// Turns a manifest into the layer list `Image::new` takes.
pub(crate) fn manifest_layers(m: &ImageManifest) -> Result<Vec<(String, Option<Digest>, Option<u64>, String)>> {
    m.layers()
        .iter()
        .map(|l| {
            let d = Digest::parse(l.digest().as_ref())?;
            Ok((l.media_type().to_string(), Some(d.clone()), Some(l.size()), d.to_string()))
        })
        .collect()
}
