//! Dev helper: `run_dir DIR /path/in/dir/binary [ARGS...]` packs DIR into a newc cpio,
//! makes its text store (every ELF's svcs rewritten), and runs the binary under the
//! emulator (HELLO=world in envp).

use selkie_manifest::{App, Spec};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn add(dir: &Path, rel: &str, out: &mut Vec<u8>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = format!("{}{}", rel, e.file_name().to_string_lossy());
        let md = std::fs::symlink_metadata(e.path()).unwrap();
        let b = cpio::newc::Builder::new(&name).mode(md.mode()).ino(md.ino() as u32).nlink(1).mtime(md.mtime() as u32);
        let data = if md.file_type().is_symlink() {
            std::fs::read_link(e.path()).unwrap().to_string_lossy().into_owned().into_bytes()
        } else if md.is_file() {
            std::fs::read(e.path()).unwrap()
        } else {
            Vec::new()
        };
        let mut w = b.write(&mut *out, data.len() as u32);
        w.write_all(&data).unwrap();
        w.finish().unwrap();
        if md.is_dir() {
            add(&e.path(), &format!("{name}/"), out);
        }
    }
}

fn main() {
    env_logger_lite();
    let args: Vec<String> = std::env::args().collect();
    let mut cpio = Vec::new();
    add(Path::new(&args[1]), "", &mut cpio);
    let cpio = cpio::newc::trailer(cpio).unwrap();
    let (text, _) = selkie_svc_rewrite::text_store(&cpio);
    let mut app: App<String> = App {
        name: "app".into(),
        binary: args[2].clone(),
        rootfs: "rootfs.cpio".into(),
        text: None,
        networks: Default::default(),
        after: Default::default(),
        argv: Default::default(),
        envp: Default::default(),
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        spec: Spec {
            heap_pages: 4096,
            stack_pages: 64,
            ut_4k_pages: 0,
            ut_large_pages: 0,
            priority: 100,
            max_priority: 100,
            max_threads: 64,
            max_processes: 16,
            rootfs_write_bytes: selkie_manifest::defaults::ROOTFS_WRITE_BYTES,
            publishes: Default::default(),
            consumes: Default::default(),
        },
    };
    for a in &args[2..] {
        app.argv.push(a.clone()).unwrap();
    }
    app.envp.push("HELLO=world".into()).unwrap();
    let r = selkie_emulator::run(&app, &cpio, &text, &Default::default()).unwrap();
    eprintln!("{r:?}");
    std::process::exit(r.status());
}

fn env_logger_lite() {
    struct L;
    impl log::Log for L {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, r: &log::Record) {
            eprintln!("[{}] {}", r.level(), r.args());
        }
        fn flush(&self) {}
    }
    let _ = log::set_logger(&L);
    log::set_max_level(log::LevelFilter::Info);
}
