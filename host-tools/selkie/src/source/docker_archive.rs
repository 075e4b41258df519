//! `docker save` tarballs: `manifest.json` names the config and layer members; members are
//! read in place, through an index of their offsets built once.

use super::{BlobSource, Image, CONFIG_LIMIT, MANIFEST_LIMIT};
use crate::digest::{read_verified, Digest};
use crate::platform::Platform;
use crate::reference::ImageRef;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Blobs read from members of a tar file.
pub struct DockerArchive {
    file: PathBuf,
    members: HashMap<String, (u64, u64)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn normalize(p: &str) -> String {
    p.trim_start_matches("./").to_string()
}

impl DockerArchive {
    pub fn index(file: &Path) -> Result<DockerArchive> {
        let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
        let mut ar = tar::Archive::new(f);
        let mut members = HashMap::new();
        for e in ar.entries_with_seek().with_context(|| format!("reading {} as tar", file.display()))? {
            let e = e.with_context(|| format!("reading {} as tar", file.display()))?;
            if e.header().entry_type().is_file() {
                let name = normalize(&e.path()?.to_string_lossy());
                members.insert(name, (e.raw_file_position(), e.size()));
            }
        }
        Ok(DockerArchive { file: file.to_path_buf(), members })
    }

    fn member_size(&self, name: &str) -> Option<u64> {
        self.members.get(&normalize(name)).map(|m| m.1)
    }
}

impl BlobSource for DockerArchive {
    fn open(&self, locator: &str) -> Result<Box<dyn Read + Send + '_>> {
        let &(off, size) = self
            .members
            .get(&normalize(locator))
            .with_context(|| format!("{} has no member {locator:?}", self.file.display()))?;
        let mut f = File::open(&self.file).with_context(|| format!("opening {}", self.file.display()))?;
        f.seek(SeekFrom::Start(off))?;
        Ok(Box::new(std::io::BufReader::with_capacity(256 << 10, f.take(size))))
    }
}

/// The digest a member's name stands for: `blobs/sha256/<hex>` or `<hex>.json`.
fn digest_in_name(name: &str) -> Option<Digest> {
    let base = name.rsplit('/').next()?;
    let hex = base.strip_suffix(".json").unwrap_or(base);
    Digest::parse(&format!("sha256:{hex}")).ok()
}

pub(super) fn open(reference: &ImageRef, file: &Path, tag: Option<&str>, _platform: &Platform) -> Result<Image> {
    let ar = DockerArchive::index(file)?;
    let manifest_raw = {
        let size = ar.member_size("manifest.json").with_context(|| format!("{} has no manifest.json", file.display()))?;
        if size > MANIFEST_LIMIT {
            bail!("{}: manifest.json is over {MANIFEST_LIMIT} bytes", file.display());
        }
        let mut v = Vec::new();
        ar.open("manifest.json")?.read_to_end(&mut v)?;
        v
    };
    let entries: Vec<Entry> = serde_json::from_slice(&manifest_raw)
        .with_context(|| format!("{}: manifest.json is not a docker-archive manifest", file.display()))?;
    let entry = match tag {
        Some(t) => {
            let want = if t.contains(':') { t.to_string() } else { format!("{t}:latest") };
            entries
                .iter()
                .find(|e| e.repo_tags.iter().flatten().any(|rt| *rt == want || rt.ends_with(&format!("/{want}"))))
                .with_context(|| format!("{} has no image tagged {want}", file.display()))?
        }
        None => match entries.as_slice() {
            [one] => one,
            [] => bail!("{}: manifest.json lists no images", file.display()),
            _ => bail!("{} holds {} images; name one as docker-archive:FILE:REPO:TAG", file.display(), entries.len()),
        },
    };
    let config_digest = digest_in_name(&entry.config)
        .with_context(|| format!("{}: config member {:?} is not named by its digest", file.display(), entry.config))?;
    let label = format!("config {config_digest}");
    let config_raw = read_verified(ar.open(&entry.config)?, &config_digest, ar.member_size(&entry.config), &label, CONFIG_LIMIT)?;
    let layers = entry
        .layers
        .iter()
        .map(|l| {
            let size = ar.member_size(l).with_context(|| format!("{} has no layer member {l:?}", file.display()))?;
            let digest = if l.starts_with("blobs/") { digest_in_name(l) } else { None };
            Ok(("application/vnd.oci.image.layer.v1.tar".to_string(), digest, Some(size), l.clone()))
        })
        .collect::<Result<Vec<_>>>()?;
    Image::new(reference, None, config_digest, config_raw, layers, Box::new(ar))
}
