//! The root server's manifest parser on arbitrary bytes: never panics, and whatever it
//! accepts passes validation and unescapes within the string limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = selkie_manifest::parse(data) {
        assert!(m.validate().is_ok());
        let mut buf = [0u8; selkie_manifest::MAX_STR];
        for app in &m.apps {
            for a in app.argv.iter().chain(app.envp.iter()) {
                let _ = a.unescape_into(&mut buf);
            }
        }
    }
});
