//! Rewritten code for the emulator: every ELF the app executes (an exec'd program, its
//! interpreter, the libraries ld.so maps) gets its `svc #0`s rewritten into the trapping
//! `udf` on first use, with the file offsets of the rewritten words. The rootfs keeps the
//! image's bytes; only what is mapped for execution is the rewritten copy.

use musl_shim::start::LoadPlan;
use musl_shim::RewrittenText;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

#[derive(Default)]
pub struct TextCache {
    map: RefCell<HashMap<(u64, usize), Option<Rc<RewrittenText>>>>,
}

fn key(file: &[u8]) -> (u64, usize) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    file.hash(&mut h);
    (h.finish(), file.len())
}

impl TextCache {
    /// `file` rewritten, or `None` when it is not an aarch64 ELF or has no syscalls to
    /// rewrite (already rewritten, or none in it).
    pub fn get(&self, file: &[u8]) -> Option<Rc<RewrittenText>> {
        let k = key(file);
        if let Some(v) = self.map.borrow().get(&k) {
            return v.clone();
        }
        let v = rewrite(file).map(Rc::new);
        self.map.borrow_mut().insert(k, v.clone());
        v
    }
}

fn rewrite(file: &[u8]) -> Option<RewrittenText> {
    let r = match selkie_svc_rewrite::rewrite(file) {
        Ok(r) => r,
        Err(e) => {
            log::debug!("not rewriting a mapped file: {e}");
            return None;
        }
    };
    let plan = LoadPlan::parse(file).ok()?;
    let offsets = r.traps.iter().filter_map(|&va| plan.file_offset(va)).collect();
    Some(RewrittenText { bytes: r.bytes, offsets })
}
