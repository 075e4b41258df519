//! `selkie pack`: from image references to a bundle (manifest, and per app its rootfs cpio,
//! unchanged, and its text store: every ELF's `svc`s rewritten, see `musl_shim::text`). Every output file is written beside its final name and renamed into place only
//! when it is complete, so a failed pack leaves nothing behind.

use crate::elf::{self, ElfInfo};
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::rootfs::{self, tree::Kind, Options, Scanned};
use crate::runtime::{self, RuntimeConfig};
use crate::source::Image;
use anyhow::{bail, Context, Result};
use selkie_manifest::{App, Manifest};
use std::collections::HashMap;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Largest entrypoint binary selkie will load and rewrite.
pub const BINARY_LIMIT: u64 = 256 << 20;

#[derive(Clone, Debug, Default)]
pub struct PackOptions {
    pub platform: Platform,
    pub keep_devices: bool,
    /// Replaces Cmd, as `docker run IMAGE ARGS` does.
    pub args: Option<Vec<String>>,
    /// Overrides the app name.
    pub name: Option<String>,
    /// A compose service: its overrides of the image's config, its name and networks.
    pub service: Option<crate::compose::Service>,
}

/// One image, scanned and checked, ready to write.
pub struct Prepared {
    pub image: Image,
    pub scanned: Scanned,
    pub rc: RuntimeConfig,
    pub name: String,
    pub binary_path: String,
    pub binary_inode: usize,
    /// The entrypoint as the image has it (the rootfs keeps these bytes).
    pub binary: Vec<u8>,
    /// Link-time addresses of the entrypoint's `svc #0`s (rewritten in the text store).
    pub traps: Vec<u64>,
    /// The entrypoint is built with the selkie SDK (its `svc`s set x7; none rewritten).
    pub sdk: bool,
    pub elf: ElfInfo,
    pub ids: (u32, u32),
    /// Its compose networks (none: the image's default one).
    pub networks: Vec<String>,
    /// The compose services that must have exited with status 0 before it starts.
    pub after: Vec<String>,
}

/// Reads one regular file's content from its layer (for files pass 1 did not capture; the
/// layer was verified by pass 1).
fn read_entry(image: &Image, src: (u32, u32), limit: u64) -> Result<Vec<u8>> {
    let mut out = None;
    rootfs::layer::for_each_entry_verified_before(image, &image.layers[src.0 as usize], |idx, e| {
        if idx == src.1 {
            if e.size() > limit {
                bail!("file is larger than {limit} bytes");
            }
            let mut v = Vec::new();
            e.read_to_end(&mut v)?;
            out = Some(v);
            return Ok(rootfs::layer::Flow::Stop);
        }
        Ok(rootfs::layer::Flow::Continue)
    })?;
    out.context("entry vanished between passes")
}

fn file_content(image: &Image, scanned: &mut Scanned, path: &str) -> Result<Option<Vec<u8>>> {
    let Ok(id) = scanned.tree.lookup(path.as_bytes(), true) else { return Ok(None) };
    let Kind::File(ino) = scanned.tree.nodes[id].kind else { return Ok(None) };
    let src = scanned.tree.inodes[ino].src;
    if let Some(v) = scanned.captured.get(&src) {
        return Ok(Some(v.clone()));
    }
    read_entry(image, src, BINARY_LIMIT).map(Some)
}

/// Opens, verifies and flattens one image, and checks its entrypoint.
pub fn prepare(reference: &ImageRef, opts: &PackOptions) -> Result<Prepared> {
    let image = Image::open(reference, &opts.platform)?;
    let mut rc = RuntimeConfig::from_config(image.runtime_config(), opts.args.as_deref())
        .with_context(|| format!("image {reference}"))?;
    if let Some(svc) = &opts.service {
        apply_service(&mut rc, image.runtime_config(), svc).with_context(|| format!("service {}", svc.name))?;
    }
    let argv0_base = rc.argv[0].rsplit('/').next().unwrap_or(&rc.argv[0]).to_string();
    let ropts = Options {
        keep_devices: opts.keep_devices,
        capture_paths: vec!["etc/passwd".into(), "etc/group".into()],
        capture_basenames: vec![argv0_base],
        capture_limit: BINARY_LIMIT,
    };
    let pb = crate::progress::bar(image.layers.len() as u64, "verifying", false);
    let mut scanned = rootfs::scan(&image, &ropts, |n| pb.set_position(n as u64))
        .with_context(|| format!("image {reference}"))?;
    pb.finish_and_clear();

    let bin_node = runtime::resolve_binary(&mut scanned.tree, &rc).with_context(|| format!("image {reference}"))?;
    let binary_path = format!("/{}", scanned.tree.path(bin_node));
    let Kind::File(binary_inode) = scanned.tree.nodes[bin_node].kind else { unreachable!("resolve_binary gives files") };
    let src = scanned.tree.inodes[binary_inode].src;
    let original = match scanned.captured.get(&src) {
        Some(v) => v.clone(),
        None => read_entry(&image, src, BINARY_LIMIT).with_context(|| format!("reading {binary_path}"))?,
    };
    let elf = elf::check(&binary_path, &original).with_context(|| format!("image {reference}"))?;
    if let Some(interp) = &elf.interp {
        let found = scanned.tree.lookup(interp.trim_start_matches('/').as_bytes(), true).ok();
        if !found.is_some_and(|id| matches!(scanned.tree.nodes[id].kind, Kind::File(_))) {
            anyhow::bail!(
                "image {reference}: entrypoint {binary_path} is dynamically linked and its interpreter {interp} is not in \
                 the image (add the C library's loader, or link with -static)"
            );
        }
    }
    let (traps, sdk) = crate::syscalls::entry_traps(&binary_path, &original)?;
    let binary = original;

    let passwd = file_content(&image, &mut scanned, "/etc/passwd")?;
    let group = file_content(&image, &mut scanned, "/etc/group")?;
    let ids = runtime::resolve_user(&rc.user, passwd.as_deref(), group.as_deref())
        .with_context(|| format!("image {reference}"))?;
    let labels_name = rc
        .labels
        .get("org.selkie.app.name")
        .or_else(|| rc.labels.get("com.koskit.app.name"))
        .cloned();
    let service_name = opts.service.as_ref().map(|s| s.name.clone());
    let name = runtime::sanitize_name(&opts.name.clone().or(service_name).or(labels_name).unwrap_or_else(|| reference.short_name()));
    let networks = opts.service.as_ref().map(|s| s.networks.clone()).unwrap_or_default();
    let after = opts.service.as_ref().map(|s| s.after.clone()).unwrap_or_default();
    Ok(Prepared { image, scanned, rc, name, binary_path, binary_inode, binary, traps, sdk, elf, ids, networks, after })
}

/// A compose service's overrides, as docker compose applies them: `entrypoint` replaces
/// the image's Entrypoint and drops its Cmd, `command` replaces Cmd, `environment` is
/// added (replacing a variable of the same name), `working_dir`, `user` and `labels`
/// replace the image's.
fn apply_service(rc: &mut RuntimeConfig, cfg: Option<&oci_spec::image::Config>, svc: &crate::compose::Service) -> Result<()> {
    let image_entry = cfg.and_then(|c| c.entrypoint().clone()).unwrap_or_default();
    let image_cmd = cfg.and_then(|c| c.cmd().clone()).unwrap_or_default();
    let entry = svc.entrypoint.clone().unwrap_or(image_entry);
    let cmd = match (&svc.command, &svc.entrypoint) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => image_cmd,
    };
    let argv: Vec<String> = entry.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        bail!("no entrypoint or command");
    }
    rc.argv = argv;
    for (k, v) in &svc.environment {
        rc.env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(k.as_str()));
        rc.env.push(format!("{k}={v}"));
    }
    if let Some(w) = &svc.working_dir {
        rc.cwd = w.clone();
    }
    if let Some(u) = &svc.user {
        rc.user = u.clone();
    }
    for (k, v) in &svc.labels {
        rc.labels.insert(k.clone(), v.clone());
    }
    Ok(())
}

impl Prepared {
    /// The manifest entry, naming its bundle members.
    pub fn app(&self, rootfs: &str, text: Option<&str>) -> Result<App<String>> {
        runtime::build_app(
            &self.rc,
            self.name.clone(),
            self.binary_path.clone(),
            rootfs.into(),
            text.map(Into::into),
            self.ids,
            &self.networks,
            &self.after,
        )
        .with_context(|| format!("image {}", self.image.reference))
    }

    /// Writes the flattened rootfs, the image's bytes unchanged, as a newc cpio.
    pub fn write_rootfs<W: Write>(&self, w: W) -> Result<W> {
        let replace = HashMap::new();
        let total: u64 = self.scanned.tree.inodes.iter().map(|i| i.size).sum();
        let pb = crate::progress::bar(total, "packing", true);
        let w = rootfs::write_cpio(&self.image, &self.scanned.tree, &replace, w, |n| pb.inc(n))
            .with_context(|| format!("image {}", self.image.reference))?;
        pb.finish_and_clear();
        Ok(w)
    }

    /// The rootfs cpio and its text store (see `musl_shim::text`).
    pub fn rootfs_and_text(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let cpio = self.write_rootfs(Vec::new())?;
        let text = crate::syscalls::text_store(&self.name, &cpio);
        Ok((cpio, text))
    }
}

/// Files written into an output directory atomically: each is a temp file until commit.
pub struct Output {
    dir: PathBuf,
    created_dir: bool,
    pending: Vec<(tempfile::NamedTempFile, PathBuf)>,
}

impl Output {
    pub fn new(dir: &Path) -> Result<Output> {
        let created_dir = !dir.exists();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Output { dir: dir.to_path_buf(), created_dir, pending: Vec::new() })
    }

    /// Writes `name` through `f`.
    pub fn file(&mut self, name: &str, f: impl FnOnce(&mut BufWriter<&mut std::fs::File>) -> Result<()>) -> Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".selkie-")
            .tempfile_in(&self.dir)
            .with_context(|| format!("creating a file in {}", self.dir.display()))?;
        {
            let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            f(&mut w)?;
            w.flush()?;
        }
        self.pending.push((tmp, self.dir.join(name)));
        Ok(())
    }

    /// Renames every file into place.
    pub fn commit(mut self) -> Result<()> {
        for (tmp, dest) in self.pending.drain(..) {
            // Temp files are created 0600; outputs are ordinary files.
            std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
            tmp.persist(&dest).with_context(|| format!("writing {}", dest.display()))?;
        }
        self.created_dir = false;
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.pending.clear();
        if self.created_dir {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Member names for app `i` of `n`: `rootfs.cpio` and `rootfs.text` for a single app,
/// `<name>.cpio` and `<name>.text` otherwise.
pub fn member_names(p: &Prepared, n: usize) -> (String, String) {
    if n == 1 {
        ("rootfs.cpio".into(), "rootfs.text".into())
    } else {
        (format!("{}.cpio", p.name), format!("{}.text", p.name))
    }
}

/// Prepares every service of a compose project, in start order, each with its overrides.
pub fn prepare_compose(project: &crate::compose::Project) -> Result<Vec<Prepared>> {
    project
        .services
        .iter()
        .map(|svc| {
            let r = ImageRef::parse(&svc.image).with_context(|| format!("services.{}.image", svc.name))?;
            let opts = PackOptions { service: Some(svc.clone()), ..Default::default() };
            prepare(&r, &opts).with_context(|| format!("service {}", svc.name))
        })
        .collect()
}

/// Prepares every image and checks the names are unique.
pub fn prepare_all(refs: &[ImageRef], opts: &PackOptions) -> Result<Vec<Prepared>> {
    if refs.is_empty() {
        bail!("no images given");
    }
    if opts.name.is_some() && refs.len() > 1 {
        bail!("--name applies to a single image");
    }
    let prepared = refs.iter().map(|r| prepare(r, opts)).collect::<Result<Vec<_>>>()?;
    for (i, p) in prepared.iter().enumerate() {
        if prepared[..i].iter().any(|q| q.name == p.name) {
            bail!("two images give the app name {:?}; set org.selkie.app.name on one", p.name);
        }
    }
    Ok(prepared)
}

/// `selkie pack --format bundle`: writes `manifest.json` and each app's rootfs and text store.
pub fn pack_bundle(refs: &[ImageRef], opts: &PackOptions, out: &Path) -> Result<Manifest<String>> {
    let prepared = prepare_all(refs, opts)?;
    let mut output = Output::new(out)?;
    let mut apps = Vec::new();
    for p in &prepared {
        let (rootfs, text) = member_names(p, prepared.len());
        apps.push(p.app(&rootfs, Some(&text))?);
        // The rootfs streams to its file and is read back from there for the text store,
        // so that only one ELF at a time is in memory.
        let mut store = Vec::new();
        output.file(&rootfs, |w| {
            let w = p.write_rootfs(w)?;
            w.flush()?;
            let f: &mut std::fs::File = w.get_mut();
            f.seek(std::io::SeekFrom::Start(0))?;
            store = crate::syscalls::text_store_from(&p.name, std::io::BufReader::new(&mut *f))?;
            Ok(())
        })?;
        output.file(&text, |w| Ok(w.write_all(&store)?))?;
    }
    let manifest = runtime::manifest(apps, None)?;
    let json = serde_json::to_vec_pretty(&manifest)?;
    output.file("manifest.json", |w| Ok(w.write_all(&json)?))?;
    output.commit()?;
    Ok(manifest)
}
