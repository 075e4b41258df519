//! Packs one ≥ 100 MiB multi-layer image with `selkie pack` and with the baseline
//! `umoci unpack` + `find | cpio -o -H newc`, and prints the time ratio and each side's peak
//! RSS (from GNU time). Ratios, not absolute times, are the result: both run here, now.
//!
//! Usage: selkie-bench [--runs N] [--mib M]

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

fn sh(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Deterministic pseudo-random bytes, half of each file compressible text.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (v.len() / 4096) % 2 == 0 {
            v.extend_from_slice(&x.to_le_bytes());
        } else {
            v.extend_from_slice(b"selkie benchmark line of text\n");
        }
    }
    v.truncate(len);
    v
}

/// Builds the image with umoci: three layers, each adding files; the later ones also delete
/// and overwrite earlier files.
fn build_image(dir: &Path, mib: usize) -> Result<String> {
    let tag = format!("{}:bench", dir.display());
    if dir.join("index.json").exists() {
        return Ok(tag);
    }
    let tmp = tempfile::tempdir()?;
    let layout = tmp.path().join("layout");
    sh(Command::new("umoci").args(["init", "--layout"]).arg(&layout))?;
    let t = format!("{}:bench", layout.display());
    sh(Command::new("umoci").args(["new", "--image", &t]))?;
    let per_layer = mib * (1 << 20) / 3;
    for layer in 0..3u64 {
        let bundle = tmp.path().join(format!("b{layer}"));
        sh(Command::new("umoci").args(["unpack", "--image", &t]).arg(&bundle))?;
        let root = bundle.join("rootfs");
        let mut written = 0usize;
        let mut i = 0u64;
        while written < per_layer {
            let size = [512usize, 4096, 65536, 1 << 20][(i % 4) as usize];
            let d = root.join(format!("l{layer}/d{}", i % 64));
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join(format!("f{i}")), content(layer * 1_000_000 + i, size))?;
            written += size;
            i += 1;
        }
        if layer == 0 {
            let src = tmp.path().join("app.c");
            std::fs::write(&src, "int main(){return 0;}\n")?;
            std::fs::create_dir_all(root.join("bin"))?;
            sh(Command::new("aarch64-linux-musl-gcc").args(["-static", "-O2", "-o"]).arg(root.join("bin/app")).arg(&src))?;
        }
        if layer > 0 {
            let prev = root.join(format!("l{}", layer - 1));
            std::fs::remove_dir_all(prev.join("d0"))?;
            std::fs::write(prev.join("d1/f1"), b"overwritten\n")?;
        }
        sh(Command::new("umoci").args(["repack", "--image", &t]).arg(&bundle))?;
        std::fs::remove_dir_all(&bundle)?;
    }
    sh(Command::new("umoci").args(["config", "--image", &t, "--architecture", "arm64", "--config.entrypoint", "/bin/app"]))?;
    std::fs::create_dir_all(dir.parent().unwrap())?;
    sh(Command::new("cp").arg("-a").arg(&layout).arg(dir))?;
    Ok(tag)
}

/// Runs `cmd` under GNU time; returns (seconds, peak RSS in KiB).
fn measure(script: &str) -> Result<(f64, u64)> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M", "sh", "-c", script])
        .output()
        .context("running /usr/bin/time (Debian package 'time')")?;
    if !out.status.success() {
        bail!("{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    let mut it = last.split_whitespace();
    let secs: f64 = it.next().unwrap_or("0").parse()?;
    let rss: u64 = it.next().unwrap_or("0").parse()?;
    Ok((secs, rss))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: usize| -> usize {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let runs = opt("--runs", 3);
    let mib = opt("--mib", 120);
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| ws.join("target"));
    let selkie = target.join("release/selkie");
    if !selkie.exists() {
        bail!("{} is missing: run `cargo build --release -p selkie` first", selkie.display());
    }
    let image_dir = target.join(format!("bench-image-{mib}"));
    eprintln!("building the {mib} MiB image (cached in {})", image_dir.display());
    let image = build_image(&image_dir, mib)?;
    let blobs: u64 = std::fs::read_dir(image_dir.join("blobs/sha256"))?.map(|e| e.unwrap().metadata().unwrap().len()).sum();
    let work = tempfile::tempdir()?;
    let w = work.path().display();
    let (mut ts, mut tb, mut rs, mut rb) = (Vec::new(), Vec::new(), 0, 0);
    for i in 0..runs {
        let (t, r) = measure(&format!("rm -rf {w}/s{i} && {} pack oci:{image} -o {w}/s{i}", selkie.display()))?;
        ts.push(t);
        rs = rs.max(r);
        let (t, r) = measure(&format!(
            "rm -rf {w}/u{i} && umoci unpack --image {image} {w}/u{i} >/dev/null && cd {w}/u{i}/rootfs && find . | cpio -o -H newc --quiet > {w}/u{i}.cpio"
        ))?;
        tb.push(t);
        rb = rb.max(r);
        let _ = std::fs::remove_dir_all(format!("{w}/u{i}"));
    }
    let cpio = std::fs::metadata(format!("{w}/s0/rootfs.cpio"))?.len();
    let (s, b) = (median(ts), median(tb));
    println!("image: {mib} MiB of files in 3 layers, {:.1} MiB of blobs; cpio {:.1} MiB; {runs} runs, medians", blobs as f64 / 1048576.0, cpio as f64 / 1048576.0);
    println!("selkie pack:                   {s:.2} s, peak RSS {:.1} MiB", rs as f64 / 1024.0);
    println!("umoci unpack + cpio -o newc:   {b:.2} s, peak RSS {:.1} MiB (largest process)", rb as f64 / 1024.0);
    println!("speedup: {:.2}x", b / s);
    Ok(())
}
