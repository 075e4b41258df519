//! Images held in memory: for fuzzing and unit tests of everything past the source.

use super::{BlobSource, Image};
use crate::digest::Digest;
use crate::reference::ImageRef;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::io::Read;

/// Blobs in a map, by digest string.
pub struct MemorySource {
    blobs: HashMap<String, Vec<u8>>,
}

impl BlobSource for MemorySource {
    fn open(&self, locator: &str) -> Result<Box<dyn Read + Send + '_>> {
        let b = self.blobs.get(locator).with_context(|| format!("no blob {locator}"))?;
        Ok(Box::new(&b[..]))
    }
}

impl Image {
    /// An arm64 image whose layers are `layers` (each a tar, maybe compressed) with the
    /// given diff_ids, and whose config is `config` plus those diff_ids.
    pub fn in_memory(config: serde_json::Value, layers: Vec<(Vec<u8>, Digest)>) -> Result<Image> {
        let mut cfg = config;
        cfg["rootfs"] = serde_json::json!({
            "type": "layers",
            "diff_ids": layers.iter().map(|(_, d)| d.to_string()).collect::<Vec<_>>(),
        });
        cfg["architecture"] = cfg.get("architecture").cloned().unwrap_or_else(|| "arm64".into());
        cfg["os"] = cfg.get("os").cloned().unwrap_or_else(|| "linux".into());
        let config_raw = serde_json::to_vec(&cfg)?;
        let config_digest = Digest::of(&config_raw);
        let mut blobs = HashMap::new();
        let mut descs = Vec::new();
        for (data, _) in layers {
            let d = Digest::of(&data);
            descs.push(("application/vnd.oci.image.layer.v1.tar".to_string(), Some(d.clone()), Some(data.len() as u64), d.to_string()));
            blobs.insert(d.to_string(), data);
        }
        let reference = ImageRef::OciLayout { dir: "memory".into(), tag: None };
        Image::new(&reference, None, config_digest, config_raw, descs, Box::new(MemorySource { blobs }))
    }
}
