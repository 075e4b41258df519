//! A throwaway registry for tests: Debian's `docker-registry` on 127.0.0.1, on a free port,
//! with storage in a temporary directory and optional htpasswd auth, stopped on Drop. And a
//! loopback HTTP proxy in front of it that logs every request and can corrupt one blob in
//! transit. Plus `selkie` run with its own cache and HOME, so tests never share state.

use crate::tools::{run, selkie_bin};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `docker-registry serve`.
pub struct TestRegistry {
    child: Option<Child>,
    /// `127.0.0.1:PORT`
    pub addr: String,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something answers HTTP at `addr`.
fn wait_http(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            if s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").is_ok() {
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no HTTP server came up at {addr}");
}

impl TestRegistry {
    /// An open registry.
    pub fn start() -> TestRegistry {
        Self::start_inner("127.0.0.1", None)
    }

    /// An open registry on another loopback address (`127.0.0.2`), which is not a name
    /// selkie treats as loopback: it must use HTTPS there unless told `--plain-http`.
    pub fn start_on(host: &str) -> TestRegistry {
        Self::start_inner(host, None)
    }

    /// A registry that wants HTTP basic auth for `user`/`pass` (htpasswd -B).
    pub fn start_with_auth(user: &str, pass: &str) -> TestRegistry {
        Self::start_inner("127.0.0.1", Some((user, pass)))
    }

    fn start_inner(host: &str, auth: Option<(&str, &str)>) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        for attempt in 0..5 {
            let addr = format!("{host}:{}", free_port());
            let mut cfg = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("storage").display()
            );
            if let Some((u, p)) = auth {
                let out = run(Command::new("htpasswd").args(["-Bbn", u, p]));
                let htp = dir.path().join("htpasswd");
                std::fs::write(&htp, out.stdout).unwrap();
                cfg += &format!("auth:\n  htpasswd:\n    realm: selkie-test\n    path: {}\n", htp.display());
            }
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, cfg).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting docker-registry");
            std::thread::sleep(Duration::from_millis(100));
            if child.try_wait().unwrap().is_some() {
                // Most likely the port was taken in between: try another.
                eprintln!("docker-registry exited at once (attempt {attempt}), retrying on another port");
                continue;
            }
            wait_http(&addr);
            return TestRegistry { child: Some(child), addr, dir };
        }
        panic!(
            "docker-registry would not start: {}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// `docker://127.0.0.1:PORT/<repo_tag>`
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("docker://{}/{repo_tag}", self.addr)
    }

    /// Stops the registry now.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `skopeo copy` from `src` to the registry (with `creds` if it wants them).
pub fn skopeo_copy(src: &str, dest: &str, creds: Option<&str>, all: bool) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--dest-creds", c]);
    }
    if all {
        cmd.arg("--all");
    }
    run(cmd.args([src, dest]));
}

/// `skopeo inspect`'s Digest of an image in the registry.
pub fn skopeo_digest(reference: &str) -> String {
    let out = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", reference]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Digest"].as_str().expect("Digest").to_string()
}

/// The raw manifest of an image in the registry, as skopeo fetches it.
pub fn skopeo_raw(reference: &str) -> Vec<u8> {
    run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", reference])).stdout
}

/// A home for selkie: its own cache (`SELKIE_CACHE`) and HOME (for auth files).
pub struct SelkieEnv {
    pub dir: tempfile::TempDir,
}

impl Default for SelkieEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl SelkieEnv {
    pub fn new() -> SelkieEnv {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        SelkieEnv { dir }
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Writes `~/.docker/config.json` with `user:pass` for `registry`.
    pub fn docker_login(&self, registry: &str, user: &str, pass: &str) {
        self.write_auth(&self.dir.path().join("home/.docker/config.json"), registry, user, pass);
    }

    /// Writes podman's `$XDG_RUNTIME_DIR/containers/auth.json` with `user:pass` for `registry`.
    pub fn podman_login(&self, registry: &str, user: &str, pass: &str) {
        self.write_auth(&self.dir.path().join("run/containers/auth.json"), registry, user, pass);
    }

    fn write_auth(&self, file: &Path, registry: &str, user: &str, pass: &str) {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let auth = base64_lite::encode(format!("{user}:{pass}").as_bytes());
        let cfg = serde_json::json!({ "auths": { registry: { "auth": auth } } });
        std::fs::write(file, serde_json::to_vec(&cfg).unwrap()).unwrap();
    }

    /// Runs `selkie ARGS`: (success, stdout, stderr).
    pub fn selkie(&self, args: &[&str]) -> (bool, String, String) {
        self.selkie_env(args, &[])
    }

    /// Runs `selkie ARGS` with extra environment variables.
    pub fn selkie_env(&self, args: &[&str], vars: &[(&str, &std::ffi::OsStr)]) -> (bool, String, String) {
        let out = Command::new(selkie_bin())
            .args(args)
            .envs(vars.iter().copied())
            .env("SELKIE_CACHE", self.cache())
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            .output()
            .expect("running selkie");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `selkie ARGS` and panics with its stderr if it fails; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.selkie(args);
        assert!(ok, "selkie {args:?} failed:\n{err}");
        out
    }

    /// Whether the cache holds blob `digest`.
    pub fn cached(&self, digest: &str) -> bool {
        self.cache().join("blobs/sha256").join(digest.trim_start_matches("sha256:")).is_file()
    }
}

mod base64_lite {
    /// Standard base64 with padding (enough for an auth file).
    pub fn encode(b: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }
}

/// A loopback HTTP proxy: one request per connection, forwarded to `upstream` with
/// `Connection: close`. It logs `METHOD PATH` of every request, and flips the last byte of
/// every successful GET whose path contains `corrupt`.
pub struct Proxy {
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn read_head(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            break;
        }
        head.push(b[0]);
        if head.len() > 64 << 10 {
            break;
        }
    }
    Ok(head)
}

fn handle(mut client: TcpStream, upstream: &str, corrupt: Option<&str>, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = read_head(&mut client)?;
    if head.is_empty() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    log.lock().unwrap().push(format!("{method} {path}"));
    let mut len = 0usize;
    let mut out = format!("{request_line}\r\n");
    for l in lines.filter(|l| !l.is_empty()) {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        out += &format!("{l}\r\n");
    }
    out += "Connection: close\r\n\r\n";
    let mut body = vec![0u8; len];
    client.read_exact(&mut body)?;
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let ok = resp.starts_with(b"HTTP/1.1 200") || resp.starts_with(b"HTTP/1.0 200");
    if method == "GET" && ok && corrupt.is_some_and(|c| path.contains(c)) {
        if let Some(last) = resp.last_mut() {
            *last ^= 0xff;
        }
    }
    client.write_all(&resp)?;
    client.shutdown(Shutdown::Both)
}

impl Proxy {
    pub fn start(upstream: &str, corrupt: Option<&str>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l2, s2, up, corrupt) = (log.clone(), stop.clone(), upstream.to_string(), corrupt.map(String::from));
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (l3, up, corrupt) = (l2.clone(), up.clone(), corrupt.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &up, corrupt.as_deref(), &l3);
                });
            }
        });
        Proxy { addr, log, stop, thread: Some(thread) }
    }

    /// `METHOD PATH` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// How many GETs of blobs (not manifests) went through.
    pub fn blob_gets(&self) -> usize {
        self.requests().iter().filter(|r| r.starts_with("GET ") && r.contains("/blobs/sha256:")).count()
    }

    pub fn reference(&self, repo_tag: &str) -> String {
        format!("docker://{}/{repo_tag}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every file under `dir` with its content, for comparing outputs.
pub fn dir_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut m = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                m.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    m
}

/// Adds an OCI index to the layout `dir` under `tag`, listing the manifests tagged
/// `entries[i].0` with platform os/arch `entries[i].1`; returns the index digest.
pub fn add_index(dir: &Path, tag: &str, entries: &[(&str, &str, &str)]) -> String {
    use sha2::Digest as _;
    let idx_path = dir.join("index.json");
    let mut top: serde_json::Value = serde_json::from_slice(&std::fs::read(&idx_path).unwrap()).unwrap();
    let find = |t: &str| {
        top["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == t)
            .unwrap_or_else(|| panic!("no tag {t} in {}", idx_path.display()))
            .clone()
    };
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(t, os, arch)| {
            let m = find(t);
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": m["digest"], "size": m["size"],
                "platform": { "os": os, "architecture": arch },
            })
        })
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests,
    }))
    .unwrap();
    let hex = hex::encode(sha2::Sha256::digest(&index));
    std::fs::write(dir.join("blobs/sha256").join(&hex), &index).unwrap();
    top["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": format!("sha256:{hex}"), "size": index.len(),
        "annotations": { "org.opencontainers.image.ref.name": tag },
    }));
    std::fs::write(&idx_path, serde_json::to_vec(&top).unwrap()).unwrap();
    format!("sha256:{hex}")
}
