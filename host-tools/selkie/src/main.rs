//! The `selkie` command line.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use selkie::pack::PackOptions;
use selkie::platform::Platform;
use selkie::reference::ImageRef;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "selkie", version, about = "Pack OCI images into bootable seL4 images")]
struct Cli {
    /// Talk plain HTTP to every registry (loopback registries always get it).
    #[arg(long, global = true)]
    plain_http: bool,
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
    /// Build a Dockerfile into an OCI layout with buildah (linux/arm64, chroot isolation,
    /// storage under ~/.cache/selkie), then check it as pack would.
    Build {
        /// The build context.
        context: PathBuf,
        /// The Dockerfile (default: CONTEXT/Dockerfile).
        #[arg(short, long)]
        file: Option<PathBuf>,
        /// Where to write the image: oci:DIR[:TAG].
        #[arg(short, long, default_value = "oci:selkie-build:latest")]
        tag: String,
        /// A build argument, K=V (repeatable).
        #[arg(long = "build-arg", value_name = "K=V")]
        build_args: Vec<String>,
        /// The stage to build.
        #[arg(long)]
        target: Option<String>,
        /// A label to set, K=V (repeatable).
        #[arg(long = "label", value_name = "K=V")]
        labels: Vec<String>,
    },
    /// The selkie SDK: `selkie sdk build` makes the builder image (Debian bookworm with
    /// aarch64-selkie-linux-musl-gcc) for a Dockerfile's build stage.
    Sdk {
        #[command(subcommand)]
        cmd: SdkCmd,
    },
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
        /// Keep every device node and fifo, not only null, zero, full, random, urandom, tty, console, ptmx.
        #[arg(long)]
        keep_devices: bool,
        /// App name (one image only); defaults to the label or the image name.
        #[arg(long)]
        name: Option<String>,
        /// Also push the bootable image to docker://HOST/REPO[:TAG] as an OCI artifact.
        #[arg(long, value_name = "REF")]
        push: Option<String>,
        /// raspi4b: write a complete SD-card image (MBR, a FAT32 boot partition with the firmware,
        /// the device tree, config.txt and kernel8.img) that `dd` puts on a card.
        #[arg(long)]
        sdcard: bool,
        /// With --sdcard: take start4.elf, fixup4.dat and bcm2711-rpi-4-b.dtb from DIR instead of
        /// Debian's packages (fetched once into selkie's cache).
        #[arg(long, value_name = "DIR", requires = "sdcard")]
        firmware: Option<PathBuf>,
    },
    /// Compose files: `selkie compose pack [-f compose.yaml] --platform P -o IMAGE` makes
    /// one bootable image of every service.
    Compose {
        #[command(subcommand)]
        cmd: ComposeCmd,
        /// The compose file.
        #[arg(short, long, default_value = "compose.yaml", global = true)]
        file: PathBuf,
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
    /// Pull an image (index resolved to --platform) into an OCI layout, or a bootable seL4
    /// image artifact into a file.
    Pull {
        /// docker://HOST[:PORT]/REPO[:TAG|@DIGEST]
        image: String,
        /// oci:DIR[:TAG], or a file for a bootable seL4 image.
        #[arg(short, long)]
        output: String,
        #[arg(long)]
        platform: Option<String>,
    },
    /// Push an image (oci:DIR[:TAG], docker-archive:FILE) or a bootable seL4 image (ELF file)
    /// to docker://HOST[:PORT]/REPO[:TAG]. Prints the pushed manifest's digest.
    Push {
        source: String,
        destination: String,
        /// Bootable image: the seL4 platform it boots on. Image: the os/arch to pick when
        /// the layout has several untagged entries.
        #[arg(long)]
        platform: Option<String>,
        /// Bootable image: the seL4 version it was built against.
        #[arg(long, default_value = selkie::transfer::DEFAULT_SEL4_VERSION)]
        sel4_version: String,
        /// Bootable image: an app and the digest of the image it was packed from (repeatable).
        #[arg(long = "app", value_name = "NAME=sha256:…")]
        apps: Vec<String>,
        /// Bootable image: the container manifest.json, stored as the artifact's config.
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// The blob cache of registry pulls.
    Cache {
        #[command(subcommand)]
        cmd: CacheCmd,
    },
}

#[derive(Subcommand)]
enum SdkCmd {
    /// Build the SDK builder image from Debian packages (debootstrap, needs root), as
    /// localhost/selkie-sdk:latest in `selkie build`'s storage and into an OCI layout.
    /// Nothing is rebuilt when the stored image was made from the same recipe.
    Build {
        /// Where to write the image: oci:DIR[:TAG] (default: oci:~/.cache/selkie/sdk-image:latest).
        #[arg(short, long)]
        tag: Option<String>,
        /// Rebuild even when the stored image is up to date.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum CacheCmd {
    /// Remove every cached blob.
    Prune,
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

#[derive(Subcommand)]
enum ComposeCmd {
    /// One bootable seL4 image of every service, on their networks.
    Pack {
        /// The image ends when this service does: the others are stopped then.
        #[arg(long, value_name = "SERVICE")]
        exit_code_from: Option<String>,
        /// seL4 platform (qemu-arm-virt, ...).
        #[arg(long)]
        platform: String,
        #[arg(short, long)]
        output: PathBuf,
        /// The built root-server ELF (default: the build dir's, see root-server/build.sh).
        #[arg(long)]
        root_server: Option<PathBuf>,
    },
    /// Check the file and print its services in start order.
    Config,
    /// How the services are wired: their addresses, networks and channels.
    Inspect {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Run every service on this host with the emulator (`--emulate`), output lines
    /// prefixed `SERVICE | `, until every service has ended.
    Up {
        #[arg(long)]
        emulate: bool,
        /// Stop the others when this service ends, and exit with its status.
        #[arg(long, value_name = "SERVICE")]
        exit_code_from: Option<String>,
        /// Stop the others when any service ends.
        #[arg(long)]
        abort_on_container_exit: bool,
    },
}

/// What packing for seL4 platform `platform` needs: SEL4_PREFIX, and `root_server` or the
/// one built for it (built now when there is none).
fn boot_options(platform: &str, root_server: Option<PathBuf>) -> Result<selkie::boot::BootOptions> {
    let sel4_prefix = std::env::var_os("SEL4_PREFIX").map(PathBuf::from).ok_or_else(|| {
        anyhow::anyhow!("SEL4_PREFIX is not set: point it at an installed seL4 for {platform} (see README.md, Prerequisites for booting seL4)")
    })?;
    let root_server = match root_server {
        Some(p) => p,
        None => selkie::boot::root_server_for(platform, &sel4_prefix)?,
    };
    Ok(selkie::boot::BootOptions { platform: platform.to_string(), root_server, sel4_prefix })
}

fn run(cli: Cli) -> Result<()> {
    selkie::source::registry::set_plain_http(cli.plain_http);
    match cli.cmd {
        Cmd::Pack { images, format, output, platform, root_server, keep_devices, name, push, sdcard, firmware } => {
            let refs = images.iter().map(|s| ImageRef::parse(s)).collect::<Result<Vec<_>>>()?;
            if sdcard && platform.as_deref() != Some("raspi4b") {
                anyhow::bail!("--sdcard writes a Raspberry Pi 4 SD card: it needs --platform raspi4b");
            }
            if let Some(sel4_platform) = platform.as_deref().filter(|p| !p.contains('/')) {
                let opts = PackOptions { platform: Platform::default(), keep_devices, args: None, name, ..Default::default() };
                let boot = boot_options(sel4_platform, root_server)?;
                if sdcard {
                    if push.is_some() {
                        anyhow::bail!("--push takes the bootable image, not an SD card: pack without --sdcard to push");
                    }
                    // The firmware first: a missing file or mirror fails before the long part.
                    let fw = match &firmware {
                        Some(dir) => selkie::sdcard::firmware_from_dir(dir)?,
                        None => selkie::sdcard::debian_firmware()?,
                    };
                    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
                    let tmp = tempfile::Builder::new().prefix(".selkie-kernel8").tempfile_in(dir).with_context(|| format!("creating a temporary file in {}", dir.display()))?;
                    let names = selkie::boot::pack_image(&refs, &opts, &boot, tmp.path())?;
                    let kernel8 = std::fs::read(tmp.path()).with_context(|| format!("reading {}", tmp.path().display()))?;
                    let card = selkie::sdcard::write(&output, &kernel8, &fw)?;
                    eprintln!(
                        "packed {} into the SD-card image {} for raspi4b: {} MiB, a FAT32 boot partition with {} (firmware: {})",
                        names.join(", "),
                        output.display(),
                        card.bytes >> 20,
                        card.files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
                        fw.origin
                    );
                    return Ok(());
                }
                let names = selkie::boot::pack_image(&refs, &opts, &boot, &output)?;
                eprintln!("packed {} into {} for {sel4_platform}", names.join(", "), output.display());
                if let Some(to) = push {
                    let d = selkie::transfer::push_packed(&output, &refs, &names, sel4_platform, &to)?;
                    eprintln!("pushed {} to {to}", output.display());
                    println!("{d}");
                }
                return Ok(());
            }
            if push.is_some() {
                anyhow::bail!("--push takes a bootable image: give an seL4 --platform (e.g. qemu-arm-virt)");
            }
            let opts = PackOptions { platform: image_platform(platform.as_deref())?, keep_devices, args: None, name, ..Default::default() };
            match format {
                Format::Bundle => {
                    let m = selkie::pack::pack_bundle(&refs, &opts, &output)?;
                    for a in &m.apps {
                        eprintln!("packed {} ({}) into {}", a.name, a.binary, output.display());
                    }
                }
            }
        }
        Cmd::Compose { cmd, file } => {
            let project = selkie::compose::Project::load(&file)?;
            match cmd {
                ComposeCmd::Config => {
                    for s in &project.services {
                        let after = if s.after.is_empty() { String::new() } else { format!(" after {:?} exit 0", s.after) };
                        println!("{}: {} networks {:?}{after}", s.name, s.image, s.networks);
                    }
                }
                ComposeCmd::Inspect { json } => {
                    let prepared = selkie::pack::prepare_compose(&project)?;
                    let apps = prepared.iter().map(|p| p.app("rootfs.cpio", None)).collect::<Result<Vec<_>>>()?;
                    let services: Vec<_> = project.services.iter().zip(apps).collect();
                    let report = selkie::inspect::compose_report(&services);
                    if json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        print!("{}", selkie::inspect::render_compose(&report));
                    }
                }
                ComposeCmd::Pack { platform, output, root_server, exit_code_from } => {
                    if let Some(from) = &exit_code_from {
                        project.service(from)?;
                    }
                    let boot = boot_options(&platform, root_server)?;
                    let names = selkie::boot::pack_compose(&project, &boot, &output, exit_code_from.as_deref())?;
                    eprintln!("packed {} into {} for {platform}", names.join(", "), output.display());
                }
                ComposeCmd::Up { emulate, exit_code_from, abort_on_container_exit } => {
                    if !emulate {
                        anyhow::bail!("`selkie compose up` runs the services on this host with --emulate; for seL4, `selkie compose pack --platform P -o IMAGE` and boot the image");
                    }
                    if let Some(from) = &exit_code_from {
                        project.service(from)?;
                    }
                    let mut apps = Vec::new();
                    for p in selkie::pack::prepare_compose(&project)? {
                        let (rootfs, text) = p.rootfs_and_text()?;
                        apps.push((p.app("rootfs.cpio", Some("rootfs.text"))?, rootfs, text));
                    }
                    let services: Vec<selkie_emulator::Service> =
                        apps.iter().map(|(app, rootfs, text)| selkie_emulator::Service { app, rootfs, text }).collect();
                    let opts = selkie_emulator::ComposeOptions {
                        emu: selkie_emulator::Options { trace: std::env::var_os("SELKIE_TRACE").is_some(), ..Default::default() },
                        ends_with: exit_code_from.clone(),
                        abort_on_exit: abort_on_container_exit,
                    };
                    let reports = selkie_emulator::run_all(&services, &opts)?;
                    if let Some(from) = exit_code_from {
                        let status = reports.iter().find(|(n, _)| *n == from).map(|(_, r)| r.status()).unwrap_or(0);
                        std::process::exit(status);
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
            let (rootfs, text) = p.rootfs_and_text()?;
            let app = p.app("rootfs.cpio", Some("rootfs.text"))?;
            let emu = selkie_emulator::Options { trace: std::env::var_os("SELKIE_TRACE").is_some(), ..Default::default() };
            let report = selkie_emulator::run(&app, &rootfs, &text, &emu)?;
            tracing::info!("{} ended: {:?} after {} syscalls", app.name, report.ending, report.syscalls);
            std::process::exit(report.status());
        }
        Cmd::Build { context, file, tag, build_args, target, labels } => {
            let opts = selkie::build::BuildOptions { file, tag: tag.clone(), build_args, target, labels, storage: None };
            let report = selkie::build::build(&context, &opts)?;
            print!("{}", selkie::build::summary(&tag, &report));
        }
        Cmd::Sdk { cmd: SdkCmd::Build { tag, force } } => {
            let s = selkie::sdk::build(&selkie::sdk::SdkOptions { tag, storage: None, force })?;
            print!("{}", selkie::sdk::summary(&s));
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
        Cmd::Pull { image, output, platform } => {
            let r = match ImageRef::parse(&image)? {
                ImageRef::Registry { reference } => reference,
                _ => anyhow::bail!("{image}: pull takes docker://HOST[:PORT]/REPO[:TAG|@DIGEST]"),
            };
            let msg = selkie::transfer::pull(&r, &image_platform(platform.as_deref())?, &output)?;
            eprintln!("{msg}");
        }
        Cmd::Push { source, destination, platform, sel4_version, apps, manifest } => {
            let ImageRef::Registry { reference } = ImageRef::parse(&destination)? else {
                anyhow::bail!("{destination}: push goes to docker://HOST[:PORT]/REPO[:TAG]");
            };
            let image_platform = image_platform(platform.as_deref().filter(|p| p.contains('/')))?;
            let art = selkie::transfer::ArtifactOptions { platform, sel4_version, apps, manifest };
            let d = selkie::transfer::push(&source, &reference, &image_platform, &art)?;
            eprintln!("pushed {source} to {destination}");
            println!("{d}");
        }
        Cmd::Cache { cmd: CacheCmd::Prune } => {
            let cache = selkie::cache::Cache::open()?;
            let (n, bytes) = cache.prune()?;
            eprintln!("removed {n} blobs ({bytes} bytes) from {}", cache.root().display());
        }
    }
    Ok(())
}
