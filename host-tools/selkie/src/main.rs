//! The `selkie` command line.

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use selkie::pack::PackOptions;
use selkie::platform::Platform;
use selkie::reference::ImageRef;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "selkie", version, about = "Pack OCI images into bootable seL4 images")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    /// A directory with manifest.json and each app's rootfs cpio.
    Bundle,
}

#[derive(Subcommand)]
enum Cmd {
    /// Flatten images and write them as a bundle.
    Pack {
        /// Images: oci:DIR[:TAG], docker-archive:FILE[:REPO:TAG], docker://HOST/REPO[:TAG].
        #[arg(required = true)]
        images: Vec<String>,
        #[arg(long, value_enum, default_value = "bundle")]
        format: Format,
        /// Output directory (bundle), or the bootable image file (seL4 --platform).
        #[arg(short, long)]
        output: PathBuf,
        /// Image platform os/arch[/variant] (default linux/arm64), or, without a '/', an seL4
        /// platform (qemu-arm-virt, ...): then the output is a bootable image for it.
        #[arg(long)]
        platform: Option<String>,
        /// The built root-server ELF (seL4 platforms; default: the build dir's, see root-server/build.sh).
        #[arg(long)]
        root_server: Option<PathBuf>,
        /// Keep every device node and fifo, not only null, zero, full, random, urandom, tty, console.
        #[arg(long)]
        keep_devices: bool,
        /// App name (one image only); defaults to the label or the image name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Run an image's app (`--emulate`: on this host under unicorn, no seL4 boot).
    /// ARGS replace Cmd, as with `docker run`; exits with the app's status.
    Run {
        image: String,
        /// Run in the host emulator (the only runner for now).
        #[arg(long)]
        emulate: bool,
        #[arg(long)]
        platform: Option<String>,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Show an image's config, the manifest selkie derives, and its resource plan.
    Inspect {
        image: String,
        #[arg(long)]
        platform: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn image_platform(p: Option<&str>) -> Result<Platform> {
    p.map(Platform::parse).transpose().map(Option::unwrap_or_default)
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SELKIE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("selkie: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Pack { images, format, output, platform, root_server, keep_devices, name } => {
            let refs = images.iter().map(|s| ImageRef::parse(s)).collect::<Result<Vec<_>>>()?;
            if let Some(sel4_platform) = platform.as_deref().filter(|p| !p.contains('/')) {
                let opts = PackOptions { platform: Platform::default(), keep_devices, args: None, name };
                let boot = selkie::boot::BootOptions {
                    platform: sel4_platform.to_string(),
                    root_server: root_server.or_else(selkie::boot::default_root_server).ok_or_else(|| {
                        anyhow::anyhow!("no root server built: run root-server/build.sh, or pass --root-server PATH")
                    })?,
                    sel4_prefix: std::env::var_os("SEL4_PREFIX").map(PathBuf::from).ok_or_else(|| {
                        anyhow::anyhow!("SEL4_PREFIX is not set: point it at an installed seL4 for {sel4_platform} (see DEVELOPERS.md)")
                    })?,
                };
                let names = selkie::boot::pack_image(&refs, &opts, &boot, &output)?;
                eprintln!("packed {} into {} for {sel4_platform}", names.join(", "), output.display());
                return Ok(());
            }
            let opts = PackOptions { platform: image_platform(platform.as_deref())?, keep_devices, args: None, name };
            match format {
                Format::Bundle => {
                    let m = selkie::pack::pack_bundle(&refs, &opts, &output)?;
                    for a in &m.apps {
                        eprintln!("packed {} ({}) into {}", a.name, a.binary, output.display());
                    }
                }
            }
        }
        Cmd::Run { image, emulate, platform, args } => {
            if !emulate {
                anyhow::bail!("only `selkie run --emulate` exists so far; booting on seL4 comes with the root server");
            }
            let r = ImageRef::parse(&image)?;
            let args = (!args.is_empty()).then_some(args);
            let opts = PackOptions { platform: image_platform(platform.as_deref())?, args, ..Default::default() };
            let p = selkie::pack::prepare(&r, &opts)?;
            let rootfs = p.write_rootfs(Vec::new())?;
            let traps = (!p.traps.is_empty()).then_some("rootfs.traps");
            let app = p.app("rootfs.cpio", traps)?;
            let report = selkie_emulator::run(&app, &rootfs, &p.traps, &selkie_emulator::Options::default())?;
            tracing::info!("{} ended: {:?} after {} syscalls", app.name, report.ending, report.syscalls);
            std::process::exit(report.status());
        }
        Cmd::Inspect { image, platform, json } => {
            let r = ImageRef::parse(&image)?;
            let opts = PackOptions { platform: image_platform(platform.as_deref())?, ..Default::default() };
            let p = selkie::pack::prepare(&r, &opts)?;
            let report = selkie::inspect::report(&p)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", selkie::inspect::render(&report));
            }
        }
    }
    Ok(())
}
