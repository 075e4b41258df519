//! Images in OCI registries, `docker://host[:port]/repo[:tag|@digest]`, through `oci-client`
//! on a small tokio runtime behind a blocking API. Credentials come from the podman and docker
//! auth files; HTTPS is used except for loopback hosts and `--plain-http`. Every manifest and
//! blob is checked against its digest as it arrives and lands in the [`Cache`] only then, so
//! an image is opened from the cache like an OCI layout and never fetched twice.

use super::{fetch_verified, is_index, manifest_layers, resolve_manifest, select_platform, Image};
use super::{CONFIG_LIMIT, MANIFEST_LIMIT};
use crate::cache::Cache;
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::ImageRef;
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{Descriptor, ImageIndex, MediaType};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

static PLAIN_HTTP: AtomicBool = AtomicBool::new(false);

/// Use plain HTTP for every registry (`--plain-http`), not only loopback ones.
pub fn set_plain_http(on: bool) {
    PLAIN_HTTP.store(on, Ordering::Relaxed);
}

/// Manifest media types asked for.
const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Where credentials came from, for messages.
#[derive(Clone, Debug)]
enum AuthFrom {
    None(Vec<PathBuf>),
    File(PathBuf, String),
}

/// A connection to one repository of one registry.
pub struct Registry {
    rt: tokio::runtime::Runtime,
    client: Client,
    auth: RegistryAuth,
    auth_from: AuthFrom,
    reference: Reference,
    /// `host/repo[:tag|@digest]`, as the user wrote it.
    name: String,
    pub cache: Cache,
}

/// Splits `host[:port]/repo[:tag|@digest]`.
pub fn parse_reference(r: &str) -> Result<Reference> {
    let (host, rest) = r.split_once('/').with_context(|| format!("docker://{r}: no repository"))?;
    if host.is_empty() || rest.is_empty() {
        bail!("docker://{r}: expected docker://host[:port]/repo[:tag|@digest]");
    }
    let (repo, tag, digest) = match rest.split_once('@') {
        Some((repo, d)) => (repo, None, Some(Digest::parse(d).with_context(|| format!("docker://{r}"))?.to_string())),
        None => match rest.rsplit_once(':') {
            Some((repo, t)) if !t.contains('/') => (repo, Some(t.to_string()), None),
            _ => (rest, None, None),
        },
    };
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
    if repo.is_empty() || !repo.chars().all(valid) {
        bail!("docker://{r}: repository {repo:?} must be lowercase letters, digits, '.', '_', '-' and '/'");
    }
    let tag_ok = |t: &str| !t.is_empty() && t.len() <= 128 && t.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    Ok(match (tag, digest) {
        (_, Some(d)) => Reference::with_digest(host.into(), repo.into(), d),
        (Some(t), None) if !tag_ok(&t) => bail!("docker://{r}: invalid tag {t:?}"),
        (Some(t), None) => Reference::with_tag(host.into(), repo.into(), t),
        (None, None) => Reference::with_tag(host.into(), repo.into(), "latest".into()),
    })
}

/// Whether `host[:port]` is a loopback name, which gets plain HTTP.
fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.split(':').next().unwrap_or(registry)
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

/// The auth files, in the order podman reads them (its own, then docker's).
fn auth_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
        v.push(PathBuf::from(f));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|f| !f.is_empty()) {
        v.push(PathBuf::from(d).join("containers/auth.json"));
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|f| !f.is_empty()) {
        v.push(PathBuf::from(d).join("config.json"));
    } else if let Some(h) = std::env::var_os("HOME").filter(|f| !f.is_empty()) {
        v.push(PathBuf::from(h).join(".docker/config.json"));
    }
    v
}

/// Credentials for `registry` from the first auth file that has an entry for it.
fn credentials(registry: &str) -> Result<(RegistryAuth, AuthFrom)> {
    let files = auth_files();
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else { continue };
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", f.display()))?;
        let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else { continue };
        let entry = auths.iter().find(|(k, _)| {
            let k = k.trim_start_matches("https://").trim_start_matches("http://");
            k.split('/').next() == Some(registry)
        });
        let Some((_, e)) = entry else { continue };
        if let Some(t) = e.get("registrytoken").and_then(|t| t.as_str()).filter(|t| !t.is_empty()) {
            return Ok((RegistryAuth::Bearer(t.to_string()), AuthFrom::File(f.clone(), "a registry token".into())));
        }
        if let Some(a) = e.get("auth").and_then(|a| a.as_str()).filter(|a| !a.is_empty()) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .with_context(|| format!("{}: auths.{registry}.auth is not base64", f.display()))?;
            let s = String::from_utf8(raw).with_context(|| format!("{}: auths.{registry}.auth is not UTF-8", f.display()))?;
            let (user, pass) = s
                .split_once(':')
                .with_context(|| format!("{}: auths.{registry}.auth is not user:password", f.display()))?;
            return Ok((
                RegistryAuth::Basic(user.into(), pass.into()),
                AuthFrom::File(f.clone(), format!("user {user:?}")),
            ));
        }
    }
    Ok((RegistryAuth::Anonymous, AuthFrom::None(files)))
}

impl Registry {
    /// Connects to `r` (`host[:port]/repo[:tag|@digest]`); nothing is sent yet.
    pub fn connect(r: &str) -> Result<Registry> {
        let reference = parse_reference(r)?;
        // ring, not aws-lc-rs (which needs cmake and a C build): rustls 0.23.48 deprecated
        // ring's provider for its lack of post-quantum key exchange, which a registry pull
        // can do without.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let plain = PLAIN_HTTP.load(Ordering::Relaxed) || is_loopback(reference.registry());
        let config = ClientConfig {
            protocol: if plain { ClientProtocol::Http } else { ClientProtocol::Https },
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            platform_resolver: None,
            ..Default::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the registry client's runtime")?;
        let (auth, auth_from) = credentials(reference.registry())?;
        let client = Client::new(config);
        rt.block_on(client.store_auth_if_needed(reference.resolve_registry(), &auth));
        Ok(Registry { rt, client, auth, auth_from, reference, name: r.to_string(), cache: Cache::open()? })
    }

    /// `docker://host/repo:tag`, for messages.
    pub fn display(&self) -> String {
        format!("docker://{}", self.name)
    }

    /// The registry said 401: which credentials it rejected, or where none were found.
    fn auth_error(&self, e: &OciDistributionError) -> anyhow::Error {
        match &self.auth_from {
            AuthFrom::File(f, who) => anyhow!(
                "{}: the registry rejected the credentials ({who} from {}): {e}",
                self.display(),
                f.display()
            ),
            AuthFrom::None(files) => anyhow!(
                "{}: the registry needs credentials and none were found for {} in {}: {e}",
                self.display(),
                self.reference.registry(),
                files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Turns a client error into one that says what failed and, for auth, why.
    fn explain(&self, e: OciDistributionError) -> anyhow::Error {
        // Some calls (blob_exists) report a 401 as a plain HTTP error.
        let unauthorized = e.to_string().contains("401 Unauthorized");
        match &e {
            _ if unauthorized => self.auth_error(&e),
            OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => {
                self.auth_error(&e)
            }
            OciDistributionError::ImageManifestNotFoundError(_) => {
                anyhow!("{}: no such repository or tag: {e}", self.display())
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&str> = envelope.errors.iter().map(|x| x.message.as_str()).collect();
                let unknown = envelope.errors.iter().any(|x| {
                    let c = format!("{:?}", x.code);
                    c.contains("Unknown")
                });
                if unknown {
                    anyhow!("{}: no such repository, tag or blob ({})", self.display(), codes.join("; "))
                } else {
                    anyhow!("{}: the registry refused: {}", self.display(), codes.join("; "))
                }
            }
            _ => anyhow!("{}: {e}", self.display()),
        }
    }

    fn at_digest(&self, d: &Digest) -> Reference {
        self.reference.clone_with_digest(d.to_string())
    }

    /// Fetches manifest `target` (the reference's own tag or digest when None), checks it
    /// against `expected`, caches it, and returns its digest and bytes.
    fn manifest(&self, target: Option<&Descriptor>) -> Result<(Digest, Vec<u8>)> {
        let expected = match target {
            Some(d) => Some(Digest::parse(d.digest().as_ref())?),
            None => self.reference.digest().map(Digest::parse).transpose()?,
        };
        if let Some(d) = &expected {
            let size = target.map(|t| t.size());
            if self.cache.has(d, size) {
                let bytes = std::fs::read(self.cache.blob_path(d))?;
                if bytes.len() as u64 <= MANIFEST_LIMIT {
                    return Ok((d.clone(), bytes));
                }
            }
        }
        let at = match &expected {
            Some(d) => self.at_digest(d),
            None => self.reference.clone(),
        };
        let (bytes, _) = self
            .rt
            .block_on(self.client.pull_manifest_raw(&at, &self.auth, ACCEPT))
            .map_err(|e| self.explain(e))?;
        if bytes.len() as u64 > MANIFEST_LIMIT {
            bail!("{}: manifest is over the {MANIFEST_LIMIT}-byte limit", self.display());
        }
        let got = Digest::of(&bytes);
        if let Some(d) = &expected {
            if &got != d {
                bail!("{}: manifest {d}: digest mismatch: content is {got}", self.display());
            }
            if let Some(s) = target.map(|t| t.size()).filter(|&s| s != bytes.len() as u64) {
                bail!("{}: manifest {d}: {} bytes, descriptor says {s}", self.display(), bytes.len());
            }
        }
        self.cache.insert(&got, &bytes, &format!("manifest {got}"))?;
        Ok((got, bytes.to_vec()))
    }

    /// The descriptor of what the reference names (a manifest or an index), with every
    /// manifest on the way to `platform`'s image manifest fetched into the cache.
    pub fn resolve(&self, platform: &Platform) -> Result<Descriptor> {
        let (digest, bytes) = self.manifest(None)?;
        let top = descriptor_of(&digest, &bytes);
        let (mut desc, mut bytes) = (top.clone(), bytes);
        for _ in 0..4 {
            if !is_index(desc.media_type().as_ref(), &bytes) {
                return Ok(top);
            }
            let index = ImageIndex::from_reader(&bytes[..])
                .with_context(|| format!("{}: index {} is not an image index", self.display(), desc.digest()))?;
            desc = select_platform(&index, platform)
                .with_context(|| format!("{}: index {}", self.display(), desc.digest()))?;
            bytes = self.manifest(Some(&desc))?.1;
        }
        bail!("{}: indexes nest more than 4 deep", self.display())
    }

    /// Makes sure blob `d` is in the cache, fetching and checking it if not; returns its path.
    pub fn blob(&self, d: &Descriptor, what: &str) -> Result<PathBuf> {
        let digest = Digest::parse(d.digest().as_ref()).with_context(|| format!("{what} descriptor"))?;
        let label = format!("{} {what} {digest}", self.display());
        if self.cache.has(&digest, Some(d.size())) {
            return Ok(self.cache.blob_path(&digest));
        }
        let mut w = self.cache.writer(&digest, Some(d.size()), &label)?;
        let desc = OciDescriptor {
            media_type: d.media_type().to_string(),
            digest: digest.to_string(),
            size: d.size() as i64,
            ..Default::default()
        };
        let pb = crate::progress::bar(d.size(), &short(&digest), true);
        self.rt.block_on(async {
            let mut stream = self
                .client
                .pull_blob_stream(&self.reference, &desc)
                .await
                .map_err(|e| self.explain(e).context(label.clone()))?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.with_context(|| format!("{label}: transfer failed"))?;
                w.write(&chunk)?;
                pb.inc(chunk.len() as u64);
            }
            anyhow::Ok(())
        })?;
        pb.finish_and_clear();
        w.finish()
    }

    /// The reference's tag, if it has one.
    pub fn tag(&self) -> Option<&str> {
        self.reference.tag()
    }

    /// Uploads blob `d` (its bytes from `read`, which checks them) unless the repository has
    /// it already.
    pub fn push_blob(&self, d: &Digest, read: impl FnOnce() -> Result<Vec<u8>>) -> Result<()> {
        let exists = self
            .rt
            .block_on(self.client.blob_exists(&self.reference, &d.to_string()))
            .map_err(|e| self.explain(e))?;
        if exists {
            return Ok(());
        }
        let bytes = read()?;
        let pb = crate::progress::bar(bytes.len() as u64, &short(d), true);
        self.rt
            .block_on(self.client.push_blob(&self.reference, bytes, &d.to_string()))
            .map_err(|e| self.explain(e))
            .with_context(|| format!("pushing blob {d}"))?;
        pb.finish_and_clear();
        Ok(())
    }

    /// Uploads manifest bytes unchanged under the reference's tag (`tagged`), or under their
    /// digest; returns the digest.
    pub fn push_manifest(&self, bytes: &[u8], media_type: &str, tagged: bool) -> Result<Digest> {
        let d = Digest::of(bytes);
        let at = if tagged { self.reference.clone() } else { self.at_digest(&d) };
        let ct = http::HeaderValue::from_str(media_type).with_context(|| format!("media type {media_type:?}"))?;
        self.rt
            .block_on(self.client.push_manifest_raw(&at, bytes.to_vec(), ct))
            .map_err(|e| self.explain(e))
            .with_context(|| format!("pushing manifest {d}"))?;
        Ok(d)
    }

    /// Raw bytes of the manifest the reference names (not resolved through an index).
    pub fn top_manifest(&self) -> Result<(Digest, Vec<u8>)> {
        self.manifest(None)
    }
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

/// A descriptor for manifest bytes, with the media type they declare.
pub(crate) fn descriptor_of(digest: &Digest, bytes: &[u8]) -> Descriptor {
    let v = serde_json::from_slice::<serde_json::Value>(bytes).unwrap_or_default();
    // Without a mediaType field, what the document holds says which kind it is.
    let mt = match v.get("mediaType").and_then(|m| m.as_str()) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ if v.get("manifests").is_some() => "application/vnd.oci.image.index.v1+json".into(),
        _ if v["config"]["mediaType"].as_str().is_some_and(|m| m.contains("docker")) => {
            "application/vnd.docker.distribution.manifest.v2+json".into()
        }
        _ => "application/vnd.oci.image.manifest.v1+json".into(),
    };
    let media_type = MediaType::from(mt.as_str());
    Descriptor::new(media_type, bytes.len() as u64, oci_spec::image::Digest::try_from(digest.to_string()).expect("valid digest"))
}

/// Pulls `r` for `platform` into the cache and opens it from there.
pub(super) fn open(reference: &ImageRef, r: &str, platform: &Platform) -> Result<Image> {
    let reg = Registry::connect(r)?;
    let top = reg.resolve(platform)?;
    let cache = reg.cache.source();
    let (manifest_digest, manifest) = resolve_manifest(&cache, &top, platform)?;
    reg.blob(manifest.config(), "config")?;
    let (config_digest, config_raw) = fetch_verified(&cache, manifest.config(), "config", CONFIG_LIMIT)?;
    for (i, l) in manifest.layers().iter().enumerate() {
        reg.blob(l, &format!("layer {}/{}", i + 1, manifest.layers().len()))?;
    }
    let layers = manifest_layers(&manifest)?;
    Image::new(reference, Some(manifest_digest), config_digest, config_raw, layers, Box::new(cache))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = parse_reference("127.0.0.1:5000/apps/hello:v1").unwrap();
        assert_eq!((r.registry(), r.repository(), r.tag()), ("127.0.0.1:5000", "apps/hello", Some("v1")));
        let r = parse_reference("reg/hello").unwrap();
        assert_eq!((r.registry(), r.repository(), r.tag()), ("reg", "hello", Some("latest")));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse_reference(&format!("h:1/x@{d}")).unwrap();
        assert_eq!(r.digest(), Some(d.as_str()));
        assert!(parse_reference("h/x@sha256:nothex").is_err());
        assert!(parse_reference("h/UPPER").is_err());
    }

    #[test]
    fn loopback_hosts_get_plain_http() {
        for h in ["127.0.0.1:5000", "localhost", "localhost:80", "[::1]:5000"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["registry.example", "127.0.0.2:5000", "localhost.example"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
