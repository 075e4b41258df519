//! `selkie pull` and `selkie push`: images between registries and OCI layouts or docker
//! archives, and bootable seL4 images as OCI artifacts.
//!
//! - Pull resolves an index to one platform, fetches every blob into the cache (each checked
//!   against its digest), and only then writes the output: a new layout is built in a
//!   temporary directory and renamed into place, an existing one gets its blobs by rename and
//!   a new `index.json` by rename, and an artifact's ELF is renamed into place.
//! - Push sends an OCI layout's manifests (and whole index) byte for byte, so digests are
//!   kept. A docker archive has no manifest: one is built from its config and layers.
//! - An artifact is an image manifest with `artifactType` [`ARTIFACT_TYPE`], the container
//!   manifest (or the empty descriptor) as its config, the ELF as its one layer, and
//!   annotations naming the seL4 platform and version and the apps' image digests.

use crate::cache::Cache;
use crate::digest::{read_verified, Digest};
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::source::registry::{descriptor_of, Registry};
use crate::source::{is_index, resolve_manifest, top_descriptor, BlobSource, Image, OciLayout, MANIFEST_LIMIT};
use anyhow::{bail, Context, Result};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde_json::json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The artifactType of a bootable seL4 image.
pub const ARTIFACT_TYPE: &str = "application/vnd.selkie.sel4.image.v1";
/// The media type of its one layer, the bootable ELF.
pub const ELF_MEDIA_TYPE: &str = "application/vnd.selkie.sel4.image.v1.elf";
/// The media type of its config when that is the container manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.selkie.manifest.v1+json";
/// The OCI empty descriptor's media type (config when no container manifest is given).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const ANN_PLATFORM: &str = "org.selkie.sel4.platform";
pub const ANN_SEL4_VERSION: &str = "org.selkie.sel4.version";
pub const ANN_APPS: &str = "org.selkie.sel4.apps";
/// The seL4 release selkie's root server is built against (README: prerequisites).
pub const DEFAULT_SEL4_VERSION: &str = "16.0.0";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Largest blob pushed (read into memory whole).
const PUSH_LIMIT: u64 = 4 << 30;

/// What `selkie push IMAGE.elf REF` records beside the ELF.
#[derive(Clone, Debug, Default)]
pub struct ArtifactOptions {
    /// The seL4 platform the image boots on (qemu-arm-virt, ...).
    pub platform: Option<String>,
    pub sel4_version: String,
    /// Apps as `name=sha256:…` (the image manifest digest each app was packed from).
    pub apps: Vec<String>,
    /// The container manifest (manifest.json), stored as the config blob.
    pub manifest: Option<PathBuf>,
}

/// Where `selkie pull` writes: `oci:DIR[:TAG]` or a file (for artifacts).
fn pull_target(out: &str, reg: &Registry) -> Result<Option<(PathBuf, String)>> {
    if !out.starts_with("oci:") {
        return Ok(None);
    }
    match ImageRef::parse(out)? {
        ImageRef::OciLayout { dir, tag } => {
            let tag = tag.unwrap_or_else(|| reg.tag().unwrap_or("latest").to_string());
            Ok(Some((dir, tag)))
        }
        _ => unreachable!("oci: parses as a layout"),
    }
}

/// `selkie pull REF -o OUT`; returns a line saying what was written.
pub fn pull(reference: &str, platform: &Platform, out: &str) -> Result<String> {
    let reg = Registry::connect(reference)?;
    let Some((dir, tag)) = pull_target(out, &reg)? else {
        return pull_artifact(&reg, Path::new(out));
    };
    let top = reg.resolve(platform)?;
    let cache = reg.cache.source();
    let (md, m) = resolve_manifest(&cache, &top, platform)?;
    let mut blobs = vec![md.clone()];
    reg.blob(m.config(), "config")?;
    blobs.push(Digest::parse(m.config().digest().as_ref())?);
    for (i, l) in m.layers().iter().enumerate() {
        reg.blob(l, &format!("layer {}/{}", i + 1, m.layers().len()))?;
        blobs.push(Digest::parse(l.digest().as_ref())?);
    }
    let bytes = std::fs::read(reg.cache.blob_path(&md))?;
    let desc = descriptor_of(&md, &bytes);
    write_layout(&dir, &tag, &reg.cache, &blobs, &desc)
        .with_context(|| format!("writing oci:{}:{tag}", dir.display()))?;
    Ok(format!("pulled {} ({md}) into oci:{}:{tag}", reg.display(), dir.display()))
}

/// Copies cached blob `d` to `dest` through a temporary name.
fn copy_blob(cache: &Cache, d: &Digest, dest: &Path) -> Result<()> {
    let dir = dest.parent().expect("blob paths have a parent");
    let mut tmp = tempfile::Builder::new().prefix(".selkie-").tempfile_in(dir)?;
    let mut src = std::fs::File::open(cache.blob_path(d)).with_context(|| format!("cached blob {d}"))?;
    std::io::copy(&mut src, tmp.as_file_mut())?;
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    tmp.persist(dest).with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}

/// Writes a manifest and its blobs into the layout `dir` under `tag`.
fn write_layout(dir: &Path, tag: &str, cache: &Cache, blobs: &[Digest], desc: &Descriptor) -> Result<()> {
    let fresh = !dir.exists() || std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
    if !fresh && !dir.join("oci-layout").is_file() {
        bail!("{} exists and is not an OCI image layout", dir.display());
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = if fresh { Some(tempfile::Builder::new().prefix(".selkie-pull-").tempdir_in(&parent)?) } else { None };
    let work = staging.as_ref().map(|t| t.path().to_path_buf()).unwrap_or_else(|| dir.to_path_buf());
    let blob_dir = work.join("blobs").join("sha256");
    std::fs::create_dir_all(&blob_dir)?;
    for d in blobs {
        let dest = blob_dir.join(d.hex());
        if !dest.is_file() {
            copy_blob(cache, d, &dest)?;
        }
    }
    let mut entry = serde_json::to_value(desc)?;
    entry["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let mut index = if fresh {
        std::fs::write(work.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [] })
    } else {
        let p = work.join("index.json");
        serde_json::from_slice(&std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("{} is not JSON", p.display()))?
    };
    let manifests = index["manifests"]
        .as_array_mut()
        .with_context(|| format!("{}/index.json has no manifests list", dir.display()))?;
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != tag);
    manifests.push(entry);
    let mut tmp = tempfile::Builder::new().prefix(".selkie-").tempfile_in(&work)?;
    tmp.write_all(&serde_json::to_vec(&index)?)?;
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    tmp.persist(work.join("index.json"))?;
    if let Some(staging) = staging {
        if dir.exists() {
            std::fs::remove_dir(dir).with_context(|| format!("replacing the empty {}", dir.display()))?;
        }
        let kept = staging.keep();
        std::fs::set_permissions(&kept, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        if let Err(e) = std::fs::rename(&kept, dir) {
            let _ = std::fs::remove_dir_all(&kept);
            return Err(e).with_context(|| format!("renaming the new layout to {}", dir.display()));
        }
    }
    Ok(())
}

/// `selkie pull REF -o FILE`: a bootable seL4 image artifact, byte-identical.
fn pull_artifact(reg: &Registry, out: &Path) -> Result<String> {
    let (d, bytes) = reg.top_manifest()?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: manifest {d} is not JSON", reg.display()))?;
    let at = v["artifactType"].as_str().unwrap_or("(none)");
    if at != ARTIFACT_TYPE {
        bail!(
            "{} ({d}) is not a bootable seL4 image (artifactType {at}, expected {ARTIFACT_TYPE}); \
             pull images with -o oci:DIR:TAG",
            reg.display()
        );
    }
    let m = ImageManifest::from_reader(&bytes[..]).with_context(|| format!("{}: manifest {d}", reg.display()))?;
    let elf: Vec<&Descriptor> = m.layers().iter().filter(|l| l.media_type().to_string() == ELF_MEDIA_TYPE).collect();
    let [elf] = elf.as_slice() else {
        bail!("{} ({d}): expected one {ELF_MEDIA_TYPE} layer, found {}", reg.display(), elf.len());
    };
    let path = reg.blob(elf, "seL4 image")?;
    let mut output = crate::pack::Output::new(out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))?;
    let name = out.file_name().with_context(|| format!("{} is not a file name", out.display()))?;
    output.file(&name.to_string_lossy(), |w| {
        std::io::copy(&mut std::fs::File::open(&path)?, w)?;
        Ok(())
    })?;
    output.commit()?;
    let ann = m.annotations().clone().unwrap_or_default();
    let get = |k: &str| ann.get(k).cloned().unwrap_or_else(|| "?".into());
    Ok(format!(
        "pulled {} ({d}) into {}: seL4 {} image for {}",
        reg.display(),
        out.display(),
        get(ANN_SEL4_VERSION),
        get(ANN_PLATFORM)
    ))
}

/// `selkie push SRC REF`; returns the pushed manifest's digest.
pub fn push(src: &str, reference: &str, platform: &Platform, art: &ArtifactOptions) -> Result<Digest> {
    if src.starts_with("oci:") || src.starts_with("docker-archive:") || src.starts_with("docker://") {
        let r = ImageRef::parse(src)?;
        let reg = Registry::connect(reference)?;
        return match &r {
            ImageRef::OciLayout { dir, tag } => {
                let top = top_descriptor(dir, tag.as_deref(), platform)?;
                push_tree(&reg, &OciLayout::new(dir), &top, true)
            }
            ImageRef::DockerArchive { .. } => push_docker_archive(&reg, &r, platform),
            ImageRef::Registry { .. } => bail!("{src}: pull it into oci:DIR first, then push that"),
        }
        .with_context(|| format!("pushing {src} to {}", reg.display()));
    }
    push_artifact(Path::new(src), reference, art)
}

/// Pushes a manifest or an index (and everything it names) byte for byte.
fn push_tree(reg: &Registry, src: &dyn BlobSource, desc: &Descriptor, tagged: bool) -> Result<Digest> {
    let (d, bytes) = crate::source::fetch_verified(src, desc, "manifest", MANIFEST_LIMIT)?;
    let declared = descriptor_of(&d, &bytes).media_type().to_string();
    let mt = if desc.media_type().to_string().is_empty() { declared } else { desc.media_type().to_string() };
    if is_index(&mt, &bytes) {
        let index = ImageIndex::from_reader(&bytes[..]).with_context(|| format!("index {d}"))?;
        for child in index.manifests() {
            push_tree(reg, src, child, false)?;
        }
    } else {
        let m = ImageManifest::from_reader(&bytes[..]).with_context(|| format!("manifest {d}"))?;
        for (what, b) in std::iter::once(("config", m.config())).chain(m.layers().iter().map(|l| ("layer", l))) {
            let bd = Digest::parse(b.digest().as_ref())?;
            reg.push_blob(&bd, || {
                let label = format!("{what} {bd}");
                read_verified(src.open(&bd.to_string())?, &bd, Some(b.size()), &label, PUSH_LIMIT)
            })?;
        }
    }
    let mt = if mt.is_empty() { OCI_MANIFEST.to_string() } else { mt };
    reg.push_manifest(&bytes, &mt, tagged)
}

/// The OCI media type for a layer blob, from its magic bytes.
fn layer_media_type(blob: &[u8]) -> &'static str {
    if blob.starts_with(&[0x1f, 0x8b]) {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    }
}

/// The digest of a layer's uncompressed tar.
fn diff_id_of(blob: &[u8]) -> Result<Digest> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut r: Box<dyn Read> = match layer_media_type(blob) {
        t if t.ends_with("gzip") => Box::new(flate2::read::GzDecoder::new(blob)),
        t if t.ends_with("zstd") => Box::new(zstd::stream::read::Decoder::new(blob)?),
        _ => Box::new(blob),
    };
    std::io::copy(&mut r, &mut h)?;
    Ok(Digest::from_hasher(h))
}

/// Pushes a docker archive under a manifest built for it.
fn push_docker_archive(reg: &Registry, r: &ImageRef, platform: &Platform) -> Result<Digest> {
    let img = Image::open(r, platform)?;
    reg.push_blob(&img.config_digest, || Ok(img.config_raw.clone()))?;
    let mut layers = Vec::new();
    for l in &img.layers {
        let mut blob = Vec::new();
        img.open_layer(l)?.take(PUSH_LIMIT + 1).read_to_end(&mut blob).with_context(|| img.layer_label(l))?;
        if diff_id_of(&blob).with_context(|| img.layer_label(l))? != l.diff_id {
            bail!("{}: content does not match the config's diff_id {}", img.layer_label(l), l.diff_id);
        }
        let d = Digest::of(&blob);
        layers.push(json!({ "mediaType": layer_media_type(&blob), "digest": d.to_string(), "size": blob.len() }));
        reg.push_blob(&d, || Ok(blob))?;
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": img.config_digest.to_string(),
            "size": img.config_raw.len(),
        },
        "layers": layers,
    });
    reg.push_manifest(&serde_json::to_vec(&manifest)?, OCI_MANIFEST, true)
}

/// An artifact's config blob: its media type and bytes.
pub type ConfigBlob = (String, Vec<u8>);

/// The artifact manifest for an ELF (with the annotations), and its config blob.
pub fn artifact_manifest(elf: &[u8], file_name: &str, art: &ArtifactOptions) -> Result<(Vec<u8>, ConfigBlob)> {
    let platform = art
        .platform
        .as_deref()
        .context("a bootable image needs --platform (the seL4 platform it boots on, e.g. qemu-arm-virt)")?;
    if platform.contains('/') || platform.is_empty() {
        bail!("--platform {platform:?}: expected an seL4 platform name such as qemu-arm-virt");
    }
    let mut apps = Vec::new();
    for a in &art.apps {
        let (name, d) = a.split_once('=').with_context(|| format!("--app {a:?}: expected NAME=sha256:…"))?;
        let d = Digest::parse(d).with_context(|| format!("--app {a:?}"))?;
        if name.is_empty() || name.contains([',', '@']) {
            bail!("--app {a:?}: the name must be non-empty, without ',' or '@'");
        }
        apps.push(format!("{name}@{d}"));
    }
    let config = match &art.manifest {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .with_context(|| format!("{} is not JSON (expected the container manifest.json)", p.display()))?;
            (MANIFEST_MEDIA_TYPE.to_string(), bytes)
        }
        None => match embedded_manifest(elf) {
            Some(m) => (MANIFEST_MEDIA_TYPE.to_string(), m),
            None => (EMPTY_MEDIA_TYPE.to_string(), b"{}".to_vec()),
        },
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": { "mediaType": config.0, "digest": Digest::of(&config.1).to_string(), "size": config.1.len() },
        "layers": [{
            "mediaType": ELF_MEDIA_TYPE,
            "digest": Digest::of(elf).to_string(),
            "size": elf.len(),
            "annotations": { "org.opencontainers.image.title": file_name },
        }],
        "annotations": {
            ANN_PLATFORM: platform,
            ANN_SEL4_VERSION: art.sel4_version,
            ANN_APPS: apps.join(","),
        },
    });
    Ok((serde_json::to_vec(&manifest)?, config))
}

/// The container manifest of a bundle embedded in a bootable image: the data of the first
/// newc cpio member named `manifest.json` that is a JSON object with `apps`.
pub fn embedded_manifest(elf: &[u8]) -> Option<Vec<u8>> {
    const NAME: &[u8] = b"manifest.json\0";
    let field = |h: &[u8], i: usize| -> Option<usize> {
        let f = h.get(6 + 8 * i..14 + 8 * i)?;
        usize::from_str_radix(std::str::from_utf8(f).ok()?, 16).ok()
    };
    let mut at = 0;
    while let Some(pos) = elf[at..].windows(6).position(|w| w == b"070701") {
        let h = &elf[at + pos..];
        at += pos + 6;
        if field(h, 11) != Some(NAME.len()) || h.get(110..110 + NAME.len()) != Some(NAME) {
            continue;
        }
        let Some(size) = field(h, 6) else { continue };
        let start = (110 + NAME.len()).next_multiple_of(4);
        let Some(data) = h.get(start..start + size) else { continue };
        let ok = serde_json::from_slice::<serde_json::Value>(data).is_ok_and(|v| v.get("apps").is_some());
        if ok {
            return Some(data.to_vec());
        }
    }
    None
}

/// `selkie pack ... --platform P -o IMAGE.elf --push REF`: pushes the image just packed from
/// `refs` (apps `names`), recording each image's manifest digest (its config digest for a
/// docker archive, which has no manifest).
pub fn push_packed(image: &Path, refs: &[ImageRef], names: &[String], sel4_platform: &str, to: &str) -> Result<Digest> {
    let ImageRef::Registry { reference } = ImageRef::parse(to)? else {
        bail!("--push {to}: expected docker://HOST[:PORT]/REPO[:TAG]");
    };
    let mut apps = Vec::new();
    for (r, name) in refs.iter().zip(names) {
        let img = Image::open(r, &Platform::default())?;
        apps.push(format!("{name}={}", img.manifest_digest.unwrap_or(img.config_digest)));
    }
    let art = ArtifactOptions {
        platform: Some(sel4_platform.to_string()),
        sel4_version: DEFAULT_SEL4_VERSION.to_string(),
        apps,
        manifest: None,
    };
    push_artifact(image, &reference, &art)
}

/// `selkie push IMAGE.elf REF`.
fn push_artifact(file: &Path, reference: &str, art: &ArtifactOptions) -> Result<Digest> {
    let elf = std::fs::read(file).with_context(|| {
        format!("{}: not an image reference (oci:DIR[:TAG], docker-archive:FILE) nor a readable file", file.display())
    })?;
    if !elf.starts_with(b"\x7fELF") {
        bail!("{} is not an ELF file: push takes oci:DIR[:TAG], docker-archive:FILE or a bootable image", file.display());
    }
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (manifest, (_, config)) = artifact_manifest(&elf, &name, art)?;
    let reg = Registry::connect(reference)?;
    let cd = Digest::of(&config);
    reg.push_blob(&cd, || Ok(config))?;
    reg.push_blob(&Digest::of(&elf), || Ok(elf))?;
    reg.push_manifest(&manifest, OCI_MANIFEST, true)
        .with_context(|| format!("pushing {} to {}", file.display(), reg.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_manifest_records_platform_version_apps_and_config() {
        let d = Digest::of(b"app");
        let art = ArtifactOptions {
            platform: Some("qemu-arm-virt".into()),
            sel4_version: "16.0.0".into(),
            apps: vec![format!("hello={d}")],
            manifest: None,
        };
        let (m, (mt, cfg)) = artifact_manifest(b"\x7fELFxyz", "image.elf", &art).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["artifactType"], ARTIFACT_TYPE);
        assert_eq!(v["annotations"][ANN_PLATFORM], "qemu-arm-virt");
        assert_eq!(v["annotations"][ANN_APPS], format!("hello@{d}"));
        assert_eq!(v["layers"][0]["digest"], Digest::of(b"\x7fELFxyz").to_string());
        assert_eq!((mt.as_str(), cfg.as_slice()), (EMPTY_MEDIA_TYPE, &b"{}"[..]));
        let bad = ArtifactOptions { apps: vec!["hello=sha256:zz".into()], ..art.clone() };
        assert!(artifact_manifest(b"\x7fELF", "i", &bad).is_err());
        let none = ArtifactOptions { platform: None, ..art };
        assert!(artifact_manifest(b"\x7fELF", "i", &none).unwrap_err().to_string().contains("--platform"));
    }

    #[test]
    fn finds_the_manifest_of_an_embedded_bundle() {
        let manifest = br#"{"apps":[{"name":"hello"}]}"#;
        let mut elf = b"\x7fELF junk 070701 not a header".to_vec();
        for (name, data) in [("manifest.json", &manifest[..]), ("rootfs.cpio", b"070701")] {
            let mut w = cpio::newc::Builder::new(name).mode(0o100644).write(&mut elf, data.len() as u32);
            w.write_all(data).unwrap();
            w.finish().unwrap();
        }
        cpio::newc::trailer(&mut elf).unwrap();
        assert_eq!(embedded_manifest(&elf).as_deref(), Some(&manifest[..]));
        let (m, (mt, cfg)) = artifact_manifest(&elf, "i.elf", &ArtifactOptions { platform: Some("p".into()), ..Default::default() }).unwrap();
        assert_eq!((mt.as_str(), cfg.as_slice()), (MANIFEST_MEDIA_TYPE, &manifest[..]));
        assert!(String::from_utf8(m).unwrap().contains(&Digest::of(manifest).to_string()));
        assert_eq!(embedded_manifest(b"\x7fELF 070701manifest.json"), None);
    }

    #[test]
    fn layer_media_types_follow_magic() {
        assert!(layer_media_type(&[0x1f, 0x8b, 8]).ends_with("gzip"));
        assert!(layer_media_type(&[0x28, 0xb5, 0x2f, 0xfd]).ends_with("zstd"));
        assert!(layer_media_type(b"ustar").ends_with(".tar"));
    }
}
