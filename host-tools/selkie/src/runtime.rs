//! From an image's runtime config (Entrypoint, Cmd, Env, WorkingDir, User, Labels) to the
//! manifest's app entry, resolving the binary and user names against the flattened rootfs.

use crate::rootfs::tree::{Kind, NodeId, Tree};
use anyhow::{bail, Context, Result};
use selkie_manifest::{defaults, App, Spec, FORMAT_VERSION, MAX_ARGS, MAX_CHANNELS, MAX_ENV};
use std::collections::HashMap;

/// docker's default PATH, used when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Every label selkie reads: the field, then its names, the selkie one first.
pub const LABELS: &[(&str, &[&str])] = &[
    ("name", &["org.selkie.app.name", "com.koskit.app.name"]),
    ("heap_pages", &["org.selkie.app.heap_pages", "com.koskit.app.spec.heap_pages"]),
    ("stack_pages", &["org.selkie.app.stack_pages"]),
    ("ut_4k_pages", &["org.selkie.app.ut_4k_pages", "com.koskit.app.spec.ut_4k_pages"]),
    ("ut_large_pages", &["org.selkie.app.ut_large_pages", "com.koskit.app.spec.ut_large_page"]),
    ("priority", &["org.selkie.app.priority", "com.koskit.app.spec.priority"]),
    ("max_priority", &["org.selkie.app.max_priority", "com.koskit.app.spec.max_priority"]),
    ("max_threads", &["org.selkie.app.max_threads"]),
    ("max_processes", &["org.selkie.app.max_processes"]),
    ("rootfs_write_bytes", &["org.selkie.app.rootfs_write_bytes"]),
    ("publishes", &["org.selkie.app.publishes", "com.koskit.app.spec.publishes"]),
    ("consumes", &["org.selkie.app.consumes", "com.koskit.app.spec.consumes"]),
];

/// Makes an app name from anything: keeps `[A-Za-z0-9._-]`, maps the rest to `-`, at most 64.
pub fn sanitize_name(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' })
        .take(selkie_manifest::MAX_NAME)
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "app".into()
    } else {
        s
    }
}

/// The label value for `field`, with the alias checked for conflicts.
fn label<'a>(labels: &'a HashMap<String, String>, field: &str) -> Result<Option<(&'static str, &'a str)>> {
    let names = LABELS.iter().find(|(f, _)| *f == field).expect("known field").1;
    let mut found: Option<(&'static str, &'a str)> = None;
    for &n in names {
        if let Some(v) = labels.get(n) {
            match found {
                Some((first, fv)) if fv.trim() != v.trim() => {
                    bail!("labels {first}={fv:?} and {n}={v:?} disagree")
                }
                Some(_) => {}
                None => found = Some((n, v.as_str())),
            }
        }
    }
    Ok(found)
}

fn number<T: std::str::FromStr>(labels: &HashMap<String, String>, field: &str, default: T) -> Result<T> {
    match label(labels, field)? {
        None => Ok(default),
        Some((name, v)) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("label {name}={v:?} is not a valid number for {field}")),
    }
}

fn list(labels: &HashMap<String, String>, field: &str) -> Result<heapless::Vec<String, MAX_CHANNELS>> {
    let mut out = heapless::Vec::new();
    if let Some((name, v)) = label(labels, field)? {
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            out.push(item.to_string())
                .map_err(|_| anyhow::anyhow!("label {name}: more than {MAX_CHANNELS} channels"))?;
        }
    }
    Ok(out)
}

/// The resource spec from labels, with defaults.
pub fn spec_from_labels(labels: &HashMap<String, String>) -> Result<Spec<String>> {
    for k in labels.keys() {
        if k.starts_with("org.selkie.app.") && !LABELS.iter().any(|(_, names)| names.contains(&k.as_str())) {
            tracing::warn!("unknown label {k} is ignored");
        }
    }
    Ok(Spec {
        heap_pages: number(labels, "heap_pages", defaults::HEAP_PAGES)?,
        stack_pages: number(labels, "stack_pages", defaults::STACK_PAGES)?,
        ut_4k_pages: number(labels, "ut_4k_pages", defaults::UT_4K_PAGES)?,
        ut_large_pages: number(labels, "ut_large_pages", defaults::UT_LARGE_PAGES)?,
        priority: number(labels, "priority", defaults::PRIORITY)?,
        max_priority: {
            // Without an explicit max, the max follows the priority.
            let p: u8 = number(labels, "priority", defaults::PRIORITY)?;
            number(labels, "max_priority", p.max(defaults::MAX_PRIORITY))?
        },
        max_threads: number(labels, "max_threads", defaults::MAX_THREADS)?,
        max_processes: number(labels, "max_processes", defaults::MAX_PROCESSES)?,
        rootfs_write_bytes: number(labels, "rootfs_write_bytes", defaults::ROOTFS_WRITE_BYTES)?,
        publishes: list(labels, "publishes")?,
        consumes: list(labels, "consumes")?,
    })
}

/// What the runtime config gives, before the rootfs is consulted.
pub struct RuntimeConfig {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub labels: HashMap<String, String>,
}

impl RuntimeConfig {
    /// Entrypoint + Cmd (or `args` in place of Cmd, as `docker run IMAGE ARGS` does).
    pub fn from_config(cfg: Option<&oci_spec::image::Config>, args: Option<&[String]>) -> Result<RuntimeConfig> {
        let entry = cfg.and_then(|c| c.entrypoint().clone()).unwrap_or_default();
        let cmd = match args {
            Some(a) => a.to_vec(),
            None => cfg.and_then(|c| c.cmd().clone()).unwrap_or_default(),
        };
        let argv: Vec<String> = entry.into_iter().chain(cmd).collect();
        if argv.is_empty() {
            bail!("the image has no Entrypoint or Cmd, and no arguments were given");
        }
        let mut env = cfg.and_then(|c| c.env().clone()).unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        let cwd = cfg
            .and_then(|c| c.working_dir().clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        if !cwd.starts_with('/') {
            bail!("WorkingDir {cwd:?} is not absolute");
        }
        Ok(RuntimeConfig {
            argv,
            env,
            cwd,
            user: cfg.and_then(|c| c.user().clone()).unwrap_or_default(),
            labels: cfg.and_then(|c| c.labels().clone()).unwrap_or_default(),
        })
    }

    pub fn path_var(&self) -> &str {
        self.env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
    }
}

/// Finds the entrypoint binary: a path with a `/` is taken as is (relative to WorkingDir);
/// a bare name is searched on PATH. Returns the regular-file node.
pub fn resolve_binary(tree: &mut Tree, rc: &RuntimeConfig) -> Result<NodeId> {
    let argv0 = &rc.argv[0];
    let is_file = |tree: &Tree, id: NodeId| matches!(tree.nodes[id].kind, Kind::File(_));
    if argv0.contains('/') {
        let base = tree.lookup(rc.cwd.as_bytes(), true).ok();
        let id = tree
            .lookup_from(base.unwrap_or(crate::rootfs::tree::ROOT), argv0.as_bytes(), true)
            .map_err(|e| anyhow::anyhow!("entrypoint {argv0:?} is not in the image: {e}"))?;
        if !is_file(tree, id) {
            bail!("entrypoint {argv0:?} is not a regular file in the image");
        }
        return Ok(id);
    }
    for dir in rc.path_var().split(':').filter(|d| d.starts_with('/')) {
        let p = format!("{}/{argv0}", dir.trim_end_matches('/'));
        if let Ok(id) = tree.lookup(p.as_bytes(), true) {
            if is_file(tree, id) {
                return Ok(id);
            }
        }
    }
    bail!("entrypoint {argv0:?} is not found on PATH {} in the image", rc.path_var())
}

/// Resolves `User` (`uid[:gid]`, or names) with the rootfs' /etc/passwd and /etc/group,
/// given as their contents when the image has them.
pub fn resolve_user(user: &str, passwd: Option<&[u8]>, group: Option<&[u8]>) -> Result<(u32, u32)> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let lookup = |file: Option<&[u8]>, fname: &str, name: &str| -> Result<(u32, Option<u32>)> {
        let text = file.with_context(|| format!("User {user:?}: the image has no {fname} to resolve {name:?}"))?;
        for line in String::from_utf8_lossy(text).lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 3 && f[0] == name {
                let id = f[2].parse().with_context(|| format!("{fname}: bad id for {name}"))?;
                let gid = if fname == "/etc/passwd" { f.get(3).and_then(|g| g.parse().ok()) } else { None };
                return Ok((id, gid));
            }
        }
        bail!("User {user:?}: {name:?} is not in the image's {fname}")
    };
    let (uid, primary_gid) = match u.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => lookup(passwd, "/etc/passwd", u)?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(group, "/etc/group", g)?.0,
        },
        None => primary_gid.unwrap_or(0),
    };
    Ok((uid, gid))
}

/// Builds the app entry. `name` and `binary` are already decided; `rootfs`/`text` name the
/// bundle members.
pub fn build_app(
    rc: &RuntimeConfig,
    name: String,
    binary: String,
    rootfs: String,
    text: Option<String>,
    ids: (u32, u32),
    networks: &[String],
    after: &[String],
) -> Result<App<String>> {
    let mut nets = heapless::Vec::<String, { selkie_manifest::MAX_NETWORKS }>::new();
    for n in networks {
        if n.is_empty() || n.len() > selkie_manifest::MAX_NAME {
            bail!("network name {n:?} is empty or longer than {} bytes", selkie_manifest::MAX_NAME);
        }
        nets.push(n.clone()).map_err(|_| anyhow::anyhow!("more than {} networks", selkie_manifest::MAX_NETWORKS))?;
    }
    let mut waits = heapless::Vec::<String, { selkie_manifest::MAX_APPS }>::new();
    for a in after {
        waits.push(a.clone()).map_err(|_| anyhow::anyhow!("waits for more than {} apps", selkie_manifest::MAX_APPS))?;
    }
    let mut argv = heapless::Vec::<String, MAX_ARGS>::new();
    for a in &rc.argv {
        argv.push(a.clone()).map_err(|_| anyhow::anyhow!("more than {MAX_ARGS} arguments"))?;
    }
    let mut envp = heapless::Vec::<String, MAX_ENV>::new();
    for e in &rc.env {
        envp.push(e.clone()).map_err(|_| anyhow::anyhow!("more than {MAX_ENV} environment entries"))?;
    }
    let app = App {
        name,
        binary,
        rootfs,
        text,
        argv,
        envp,
        cwd: rc.cwd.clone(),
        uid: ids.0,
        gid: ids.1,
        spec: spec_from_labels(&rc.labels)?,
        networks: nets,
        after: waits,
    };
    app.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(app)
}

/// The manifest for a list of apps, validated; the image ends when `ends_with` does (see
/// `Manifest::ends_with`).
pub fn manifest(apps: Vec<App<String>>, ends_with: Option<&str>) -> Result<selkie_manifest::Manifest<String>> {
    let mut v = heapless::Vec::new();
    for a in apps {
        v.push(a).map_err(|_| anyhow::anyhow!("more than {} apps in one image", selkie_manifest::MAX_APPS))?;
    }
    let m = selkie_manifest::Manifest { version: FORMAT_VERSION, apps: v, ends_with: ends_with.map(String::from) };
    m.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn seed_labels_are_aliases() {
        let s = spec_from_labels(&labels(&[
            ("com.koskit.app.spec.heap_pages", "2560"),
            ("com.koskit.app.spec.ut_large_page", "4"),
            ("com.koskit.app.spec.ut_4k_pages", "24"),
            ("com.koskit.app.spec.max_priority", "190"),
            ("com.koskit.app.spec.priority", "180"),
            ("com.koskit.app.spec.publishes", "hello_protocol, internet_protocol"),
        ]))
        .unwrap();
        assert_eq!((s.heap_pages, s.ut_large_pages, s.ut_4k_pages), (2560, 4, 24));
        assert_eq!((s.priority, s.max_priority), (180, 190));
        assert_eq!(s.publishes.as_slice(), ["hello_protocol", "internet_protocol"]);
        assert_eq!(s.stack_pages, defaults::STACK_PAGES);
    }

    #[test]
    fn bad_and_conflicting_labels_are_named() {
        let e = spec_from_labels(&labels(&[("org.selkie.app.heap_pages", "lots")])).unwrap_err();
        assert!(e.to_string().contains("org.selkie.app.heap_pages"), "{e}");
        let e = spec_from_labels(&labels(&[
            ("org.selkie.app.priority", "10"),
            ("com.koskit.app.spec.priority", "20"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("disagree"), "{e}");
        assert!(spec_from_labels(&labels(&[("org.selkie.app.priority", "300")])).is_err());
    }

    #[test]
    fn users_resolve_through_passwd() {
        let passwd = b"root:x:0:0::/root:/bin/sh\nappuser:x:1000:1001::/home/a:/bin/sh\n";
        let group = b"root:x:0:\nstaff:x:50:\n";
        assert_eq!(resolve_user("", None, None).unwrap(), (0, 0));
        assert_eq!(resolve_user("7:8", None, None).unwrap(), (7, 8));
        assert_eq!(resolve_user("appuser", Some(passwd), Some(group)).unwrap(), (1000, 1001));
        assert_eq!(resolve_user("appuser:staff", Some(passwd), Some(group)).unwrap(), (1000, 50));
        assert!(resolve_user("nobody", Some(passwd), None).unwrap_err().to_string().contains("nobody"));
        assert!(resolve_user("appuser", None, None).unwrap_err().to_string().contains("/etc/passwd"));
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name("my app/v1"), "my-app-v1");
        assert_eq!(sanitize_name("///"), "app");
    }
}
