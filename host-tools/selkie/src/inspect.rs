//! `selkie inspect`: the image's config, the manifest selkie derives, and a resource plan.

use crate::elf::{plan, ResourcePlan, Segment};
use crate::pack::{member_names, Prepared};
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Serialize)]
pub struct Report {
    pub reference: String,
    pub platform: String,
    pub manifest_digest: Option<String>,
    pub config_digest: String,
    pub layers: Vec<LayerReport>,
    pub app: selkie_manifest::App<String>,
    pub binary: BinaryReport,
    pub plan: ResourcePlan,
    pub dropped_devices: Vec<String>,
}

#[derive(Serialize)]
pub struct LayerReport {
    pub digest: Option<String>,
    pub diff_id: String,
    pub size: Option<u64>,
    pub media_type: String,
}

#[derive(Serialize)]
pub struct BinaryReport {
    pub path: String,
    pub size: usize,
    pub pie: bool,
    pub entry: u64,
    pub tls: bool,
    /// The dynamic linker of a dynamically linked entrypoint.
    pub interp: Option<String>,
    pub rewritten_syscalls: usize,
    /// Built with the selkie SDK: syscalls carry their number in x7, none is rewritten.
    pub sdk_syscalls: bool,
    pub segments: Vec<Segment>,
}

pub fn report(p: &Prepared) -> Result<Report> {
    let (rootfs, text) = member_names(p, 1);
    let app = p.app(&rootfs, Some(&text))?;
    let plan = plan(&p.elf, &app.spec);
    Ok(Report {
        reference: p.image.reference.to_string(),
        platform: p.image.platform.clone(),
        manifest_digest: p.image.manifest_digest.as_ref().map(|d| d.to_string()),
        config_digest: p.image.config_digest.to_string(),
        layers: p
            .image
            .layers
            .iter()
            .map(|l| LayerReport {
                digest: l.digest.as_ref().map(|d| d.to_string()),
                diff_id: l.diff_id.to_string(),
                size: l.size,
                media_type: l.media_type.clone(),
            })
            .collect(),
        binary: BinaryReport {
            path: p.binary_path.clone(),
            size: p.binary.len(),
            pie: p.elf.pie,
            entry: p.elf.entry,
            tls: p.elf.tls,
            interp: p.elf.interp.clone(),
            rewritten_syscalls: p.traps.len(),
            sdk_syscalls: p.sdk,
            segments: p.elf.segments.clone(),
        },
        app,
        plan,
        dropped_devices: p.scanned.dropped.clone(),
    })
}

fn kib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// The report as a readable table.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let a = &r.app;
    let _ = writeln!(s, "Image      {}", r.reference);
    let _ = writeln!(s, "Platform   {}", r.platform);
    if let Some(d) = &r.manifest_digest {
        let _ = writeln!(s, "Manifest   {d}");
    }
    let _ = writeln!(s, "Config     {}", r.config_digest);
    let _ = writeln!(s, "Layers     {}", r.layers.len());
    for (i, l) in r.layers.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {:>2}  {}  {}",
            i + 1,
            l.digest.as_deref().unwrap_or(&l.diff_id),
            l.size.map(kib).unwrap_or_default()
        );
    }
    let _ = writeln!(s, "\nApp        {}", a.name);
    let _ = writeln!(s, "Binary     {} ({}, {}{})", r.binary.path, kib(r.binary.size as u64),
        if r.binary.pie { "static-pie" } else { "static" }, if r.binary.tls { ", TLS" } else { "" });
    if r.binary.sdk_syscalls {
        let _ = writeln!(s, "Syscalls   selkie SDK: svc with the number in x7, none rewritten (2 kernel entries each)");
    } else {
        let _ = writeln!(s, "Syscalls   {} svc sites rewritten to traps", r.binary.rewritten_syscalls);
    }
    let _ = writeln!(s, "Argv       {:?}", a.argv.as_slice());
    let _ = writeln!(s, "Env        {:?}", a.envp.as_slice());
    let _ = writeln!(s, "Cwd        {}", a.cwd);
    let _ = writeln!(s, "User       {}:{}", a.uid, a.gid);
    let sp = &a.spec;
    let _ = writeln!(s, "Priority   {} (max {})", sp.priority, sp.max_priority);
    if !sp.publishes.is_empty() || !sp.consumes.is_empty() {
        let _ = writeln!(s, "Channels   publishes {:?}, consumes {:?}", sp.publishes.as_slice(), sp.consumes.as_slice());
    }
    let _ = writeln!(s, "\nResource plan");
    let _ = writeln!(s, "  {:<22} {:>8} {:>12}", "region", "frames", "bytes");
    for seg in &r.binary.segments {
        let _ = writeln!(s, "  {:<22} {:>8} {:>12}", format!("segment {} @{:#x}", seg.perms, seg.vaddr), seg.frames, kib(seg.frames * 4096));
    }
    let p = &r.plan;
    let _ = writeln!(s, "  {:<22} {:>8} {:>12}", "stack", p.stack_frames, kib(p.stack_frames * 4096));
    let _ = writeln!(s, "  {:<22} {:>8} {:>12}", "heap (at most)", p.heap_frames_max, kib(p.heap_frames_max * 4096));
    let _ = writeln!(s, "  {:<22} {:>8} {:>12}", "IPC buffer", p.ipc_buffer_frames, kib(4096));
    let _ = writeln!(s, "  {:<22} {:>8} {:>12}", "page tables", p.page_tables, kib(p.page_tables * 4096));
    let _ = writeln!(s, "  {:<22} {:>8} {:>12}", "TCB, VSpace, CNode, EP", "", kib(p.kernel_object_bytes - p.page_tables * 4096));
    let _ = writeln!(s, "  {:<22} {:>8} {:>12}", "extra (labels)", "", kib(p.extra_untyped_bytes));
    let _ = writeln!(s, "  {:<22} {:>8} {:>12}", "untyped needed", "", kib(p.untyped_bytes));
    if !r.dropped_devices.is_empty() {
        let _ = writeln!(s, "\nDropped    {} device nodes/fifos: {:?}", r.dropped_devices.len(), r.dropped_devices);
    }
    s
}

/// `selkie compose inspect`: how the services of one compose file are wired in the image
/// `compose pack` makes (and `compose up --emulate` runs): their addresses on their
/// networks and the channels between them.
#[derive(Serialize)]
pub struct ComposeReport {
    pub services: Vec<ServiceReport>,
    pub channels: Vec<ChannelReport>,
}

#[derive(Serialize)]
pub struct ServiceReport {
    pub name: String,
    pub image: String,
    pub networks: Vec<String>,
    pub address: String,
    pub publishes: Vec<String>,
    pub consumes: Vec<String>,
}

/// One channel: who publishes and consumes it, and what carries it.
#[derive(Serialize)]
pub struct ChannelReport {
    pub name: String,
    /// /dev/selkie/channels/NAME in every app that names it.
    pub path: String,
    /// Its device number's minor (major `musl_shim::channel::CHANNEL_MAJOR`).
    pub minor: usize,
    pub publishers: Vec<String>,
    pub consumers: Vec<String>,
    pub ring_bytes: usize,
    pub slots: usize,
    pub max_message: usize,
}

/// The report for `services` (compose's services with their apps, in start order).
pub fn compose_report(services: &[(&crate::compose::Service, selkie_manifest::App<String>)]) -> ComposeReport {
    let named: Vec<(&str, Vec<&str>)> = services.iter().map(|(s, a)| (s.name.as_str(), a.networks.iter().map(String::as_str).collect())).collect();
    let plan = musl_shim::net::plan(&named);
    let lists: Vec<(Vec<&str>, Vec<&str>)> = services
        .iter()
        .map(|(_, a)| (a.spec.publishes.iter().map(String::as_str).collect(), a.spec.consumes.iter().map(String::as_str).collect()))
        .collect();
    let refs: Vec<(&[&str], &[&str])> = lists.iter().map(|(p, c)| (p.as_slice(), c.as_slice())).collect();
    let who = |name: &str, publishes: bool| -> Vec<String> {
        services
            .iter()
            .zip(&lists)
            .filter(|(_, (p, c))| if publishes { p.contains(&name) } else { c.contains(&name) })
            .map(|((s, _), _)| s.name.clone())
            .collect()
    };
    let channels = musl_shim::channel::plan(&refs)
        .into_iter()
        .enumerate()
        .map(|(minor, name)| ChannelReport {
            name: name.to_string(),
            path: format!("/dev/selkie/channels/{name}"),
            minor,
            publishers: who(name, true),
            consumers: who(name, false),
            ring_bytes: musl_shim::channel::RING_BYTES,
            slots: musl_shim::channel::SLOTS,
            max_message: musl_shim::channel::MAX_MESSAGE,
        })
        .collect();
    let services = services
        .iter()
        .zip(&plan)
        .map(|((s, a), m)| ServiceReport {
            name: s.name.clone(),
            image: s.image.clone(),
            networks: a.networks.to_vec(),
            address: format!("{}.{}.{}.{}", m.address[0], m.address[1], m.address[2], m.address[3]),
            publishes: a.spec.publishes.to_vec(),
            consumes: a.spec.consumes.to_vec(),
        })
        .collect();
    ComposeReport { services, channels }
}

pub fn render_compose(r: &ComposeReport) -> String {
    let mut s = String::new();
    let none = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
    let _ = writeln!(s, "{:<12} {:<12} {:<16} {:<20} {:<20} IMAGE", "SERVICE", "ADDRESS", "NETWORKS", "PUBLISHES", "CONSUMES");
    for v in &r.services {
        let _ = writeln!(s, "{:<12} {:<12} {:<16} {:<20} {:<20} {}", v.name, v.address, none(&v.networks), none(&v.publishes), none(&v.consumes), v.image);
    }
    if r.channels.is_empty() {
        let _ = writeln!(s, "\nNo channels.");
        return s;
    }
    let _ = writeln!(s, "\n{:<20} {:<24} {:<24} DEVICE", "CHANNEL", "PUBLISHERS", "CONSUMERS");
    for c in &r.channels {
        let _ = writeln!(s, "{:<20} {:<24} {:<24} {} ({}:{})", c.name, none(&c.publishers), none(&c.consumers), c.path, musl_shim::channel::CHANNEL_MAJOR, c.minor);
    }
    let _ = writeln!(
        s,
        "\nEach channel is a ring of {} bytes keeping the last {} messages of at most {} bytes: on seL4, frames \
         of the root server that a consumer maps read-only with mmap; each write is one message, each read one.",
        musl_shim::channel::RING_BYTES,
        musl_shim::channel::SLOTS,
        musl_shim::channel::MAX_MESSAGE
    );
    for c in r.channels.iter().filter(|c| c.publishers.is_empty() || c.consumers.is_empty()) {
        let _ = writeln!(s, "note: {} has no {} in this file", c.name, if c.publishers.is_empty() { "publisher" } else { "consumer" });
    }
    s
}
