//! Layer flattening and cpio writing on arbitrary layer bytes (tar, gzip or zstd): never
//! panics; a layer that scans must also write.
#![no_main]

use libfuzzer_sys::fuzz_target;
use selkie::digest::Digest;
use selkie::source::Image;

fuzz_target!(|data: &[u8]| {
    // The diff_id of the raw bytes: right for plain tar, wrong (an error) for compressed ones.
    let diff = Digest::of(data);
    let Ok(img) = Image::in_memory(serde_json::json!({}), vec![(data.to_vec(), diff)]) else { return };
    let opts = selkie::rootfs::Options { capture_limit: 1 << 16, capture_basenames: vec!["passwd".into()], ..Default::default() };
    if let Ok(scanned) = selkie::rootfs::scan(&img, &opts, |_| {}) {
        let out = selkie::rootfs::write_cpio(&img, &scanned.tree, &Default::default(), Vec::new(), |_| {});
        assert!(out.is_ok(), "scanned but failed to write: {:?}", out.err());
    }
});
