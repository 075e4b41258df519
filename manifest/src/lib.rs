//! The container manifest: what `selkie pack` tells the root server about each app.
//!
//! The host writes it as JSON (`Manifest<String>`, serialised with serde_json); the root
//! server parses it without an allocator (`Manifest<Text<'_>>`, with serde-json-core), so
//! every list has a fixed capacity and every string borrows from the input.
//!
//! Strings parsed on the root server stay JSON-escaped ([`Text`]) until they are copied out
//! with [`Text::unescape_into`], so no scratch buffer is needed to parse.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

mod decode;

use core::fmt;
use heapless::Vec;
use serde::{Deserialize, Serialize};

/// The format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Most apps in one bootable image.
pub const MAX_APPS: usize = 8;
/// Most argv entries for one app.
pub const MAX_ARGS: usize = 64;
/// Most envp entries for one app.
pub const MAX_ENV: usize = 64;
/// Most published (or consumed) channel names for one app.
pub const MAX_CHANNELS: usize = 8;
/// Most distinct channel names in one image (every app's publishes and consumes).
pub const MAX_IMAGE_CHANNELS: usize = 16;
/// Most networks one app is on.
pub const MAX_NETWORKS: usize = 8;
/// Longest single string (argument, environment entry, path), in bytes.
pub const MAX_STR: usize = 4096;
/// Longest app or channel name, in bytes.
pub const MAX_NAME: usize = 64;
/// Largest heap an app may ask for, in 4 KiB pages (1 GiB).
pub const MAX_HEAP_PAGES: u32 = 262_144;
/// Largest stack an app may ask for, in 4 KiB pages (64 MiB).
pub const MAX_STACK_PAGES: u32 = 16_384;
/// Highest seL4 priority.
pub const MAX_PRIORITY: u8 = 255;
/// Highest `max_threads` and `max_processes` a manifest may ask for.
pub const MAX_TASKS: u32 = 4096;

/// Defaults used when an image's labels say nothing.
pub mod defaults {
    /// 16 MiB of heap.
    pub const HEAP_PAGES: u32 = 4096;
    /// 8 MiB of stack, Linux's default `RLIMIT_STACK` (its frames come as it is touched).
    pub const STACK_PAGES: u32 = 2048;
    /// Untyped budget in 4 KiB units, on top of what the ELF, stack and heap need.
    pub const UT_4K_PAGES: u32 = 64;
    /// Untyped budget in 2 MiB units.
    pub const UT_LARGE_PAGES: u32 = 0;
    /// seL4 priority of the app's thread.
    pub const PRIORITY: u8 = 100;
    /// Highest priority the app may give a thread it controls.
    pub const MAX_PRIORITY: u8 = 100;
    /// Threads alive at once, across the app's processes.
    pub const MAX_THREADS: u32 = 256;
    /// Processes alive at once.
    pub const MAX_PROCESSES: u32 = 64;
    /// Bytes the app may write to its rootfs (the copy-on-write layer over the image):
    /// 64 MiB. On seL4 the root server's heap share for the app bounds it too.
    pub const ROOTFS_WRITE_BYTES: u64 = 64 << 20;
}

/// The whole manifest: the format version and the apps in boot order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
pub struct Manifest<S> {
    pub version: u32,
    pub apps: Vec<App<S>, MAX_APPS>,
    /// The app whose end ends the image: the others are then stopped (compose's
    /// `--exit-code-from`). `None`: the image runs until every app has ended.
    #[serde(default)]
    pub ends_with: Option<S>,
}

/// One app: which binary to start from which rootfs, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
pub struct App<S> {
    /// Unique name, used in reports (`[selkie] <name> exited with status N`).
    pub name: S,
    /// Absolute path of the ELF inside the app's rootfs.
    pub binary: S,
    /// Name of the app's rootfs cpio inside the bundle.
    pub rootfs: S,
    /// Name of the app's text store inside the bundle (`musl_shim::text`): for every ELF of
    /// the rootfs, the file offsets of the `svc #0`s rewritten at pack time and the
    /// rewritten executable segments. `None`: no store, syscalls are found at run time.
    pub text: Option<S>,
    pub argv: Vec<S, MAX_ARGS>,
    pub envp: Vec<S, MAX_ENV>,
    /// Absolute working directory.
    pub cwd: S,
    pub uid: u32,
    pub gid: u32,
    pub spec: Spec<S>,
    /// The networks the app is on (compose's); apps that share one reach each other by
    /// name. Empty: the image's one default network, with every app that names none.
    #[serde(default)]
    pub networks: Vec<S, MAX_NETWORKS>,
    /// Apps earlier in the manifest that must have exited with status 0 before this one
    /// starts (compose's `depends_on` with `condition: service_completed_successfully`).
    /// If one ends otherwise, this app is never started. Empty: it starts at boot.
    #[serde(default)]
    pub after: Vec<S, MAX_APPS>,
}

/// How one app that a held app waits for (one of its [`App::after`]) stands, as the runner
/// sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependency<W> {
    /// Not ended yet (running, or itself still held).
    Pending,
    /// Exited with status 0.
    Completed,
    /// Ended any other way, or never started: `W` says how, for the report.
    Failed(W),
}

/// What to do now with an app held back by its `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release<W> {
    /// Keep holding it: a dependency has not ended yet.
    Wait,
    /// Start it: every dependency exited with status 0.
    Start,
    /// Never start it: this dependency ended another way.
    Never(W),
}

/// The rule of [`App::after`] (compose's `service_completed_successfully`), one place for
/// the root server and the emulator: a dependency that failed means never, whatever the
/// others do; otherwise any pending one means wait; otherwise start. `state` says how a
/// dependency stands, by name.
pub fn release<'a, W>(after: impl IntoIterator<Item = &'a str>, mut state: impl FnMut(&'a str) -> Dependency<W>) -> Release<W> {
    let mut pending = false;
    for d in after {
        match state(d) {
            Dependency::Pending => pending = true,
            Dependency::Completed => {}
            Dependency::Failed(why) => return Release::Never(why),
        }
    }
    if pending {
        Release::Wait
    } else {
        Release::Start
    }
}

/// The resource spec, from the image's labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
pub struct Spec<S> {
    /// Most heap (brk + anonymous mmap) the app may use, in 4 KiB pages.
    pub heap_pages: u32,
    /// Stack size in 4 KiB pages.
    pub stack_pages: u32,
    /// Extra untyped budget in 4 KiB units (page tables, IPC buffer, kernel objects).
    pub ut_4k_pages: u32,
    /// Extra untyped budget in 2 MiB units.
    pub ut_large_pages: u32,
    pub priority: u8,
    pub max_priority: u8,
    /// Most threads alive at once across the app's processes (RLIMIT_NPROC-like).
    #[serde(default = "default_max_threads")]
    pub max_threads: u32,
    /// Most processes alive at once (fork beyond it fails with EAGAIN).
    #[serde(default = "default_max_processes")]
    pub max_processes: u32,
    /// Most bytes the app may write to its rootfs (new files, and image files it changes,
    /// counted in full); past it, ENOSPC.
    #[serde(default = "default_rootfs_write_bytes")]
    pub rootfs_write_bytes: u64,
    pub publishes: Vec<S, MAX_CHANNELS>,
    pub consumes: Vec<S, MAX_CHANNELS>,
}

fn default_max_threads() -> u32 {
    defaults::MAX_THREADS
}

fn default_max_processes() -> u32 {
    defaults::MAX_PROCESSES
}

fn default_rootfs_write_bytes() -> u64 {
    defaults::ROOTFS_WRITE_BYTES
}

impl<S> Spec<S> {
    /// Bytes of untyped memory the app's extra budget stands for.
    pub fn extra_untyped_bytes(&self) -> u64 {
        u64::from(self.ut_4k_pages) * 4096 + u64::from(self.ut_large_pages) * (2 << 20)
    }
}

/// A string as it stands in the JSON text, still escaped: what the root server parses into.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub &'a str);

impl<'a> Text<'a> {
    /// The escaped form, as it is in the JSON.
    pub fn raw(&self) -> &'a str {
        self.0
    }

    /// The unescaped string, without copying, when it has no escapes.
    pub fn as_plain(&self) -> Option<&'a str> {
        if self.0.contains('\\') {
            None
        } else {
            Some(self.0)
        }
    }

    /// Unescapes into `buf` and returns the bytes written.
    pub fn unescape_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, Error> {
        let mut n = 0;
        let limit = buf.len();
        for frag in serde_json_core::str::EscapedStr(self.0).fragments() {
            let mut tmp = [0u8; 4];
            let bytes = match frag.map_err(|_| Error::BadEscape)? {
                serde_json_core::str::EscapedStringFragment::NotEscaped(s) => s.as_bytes(),
                serde_json_core::str::EscapedStringFragment::Escaped(c) => {
                    c.encode_utf8(&mut tmp).as_bytes()
                }
            };
            buf.get_mut(n..n + bytes.len())
                .ok_or(Error::TooLong { what: "string", limit })?
                .copy_from_slice(bytes);
            n += bytes.len();
        }
        core::str::from_utf8(&buf[..n]).map_err(|_| Error::BadEscape)
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

/// What is wrong with a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The JSON does not parse, or a list is longer than its capacity.
    Json(serde_json_core::de::Error),
    /// The manifest is from another format version.
    Version { found: u32 },
    /// No apps at all.
    NoApps,
    /// A string or list over its limit.
    TooLong { what: &'static str, limit: usize },
    /// A field that must not be empty is.
    Empty { what: &'static str },
    /// A path that must be absolute is not.
    NotAbsolute { what: &'static str },
    /// A name with characters other than `[A-Za-z0-9._-]`.
    BadName { what: &'static str },
    /// Two apps with the same name.
    DuplicateName,
    /// A number out of its range.
    OutOfRange { what: &'static str, limit: u64 },
    /// `priority` above `max_priority`.
    PriorityAboveMax,
    /// An invalid escape in a string.
    BadEscape,
    /// An environment entry without `=`.
    BadEnv,
    /// `ends_with` names no app.
    UnknownEndsWith,
    /// An app's `after` names no app before it.
    UnknownAfter,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Json(e) => write!(f, "manifest JSON: {e}"),
            Error::Version { found } => {
                write!(f, "manifest format version {found}, expected {FORMAT_VERSION}")
            }
            Error::NoApps => write!(f, "manifest has no apps"),
            Error::TooLong { what, limit } => write!(f, "{what} is longer than {limit}"),
            Error::Empty { what } => write!(f, "{what} is empty"),
            Error::NotAbsolute { what } => write!(f, "{what} is not an absolute path"),
            Error::BadName { what } => write!(f, "{what} may only hold A-Z a-z 0-9 . _ -"),
            Error::DuplicateName => write!(f, "two apps have the same name"),
            Error::OutOfRange { what, limit } => write!(f, "{what} is above its limit {limit}"),
            Error::PriorityAboveMax => write!(f, "priority is above max_priority"),
            Error::BadEscape => write!(f, "invalid escape in a string"),
            Error::BadEnv => write!(f, "environment entry without '='"),
            Error::UnknownEndsWith => write!(f, "ends_with names no app of the manifest"),
            Error::UnknownAfter => write!(f, "an app's `after` names no app before it in the manifest"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// A manifest string type: owned on the host, escaped-borrowed on the root server.
pub trait ManifestStr {
    /// The text to check limits against (escaped on the root server, so never shorter).
    fn text(&self) -> &str;
}

impl ManifestStr for Text<'_> {
    fn text(&self) -> &str {
        self.0
    }
}

impl ManifestStr for &str {
    fn text(&self) -> &str {
        self
    }
}

#[cfg(feature = "std")]
impl ManifestStr for std::string::String {
    fn text(&self) -> &str {
        self
    }
}

/// Parses and validates a manifest on the root server, with no allocation (see `decode`:
/// it reads what serde-json-core's deserializer for `Manifest<Text>` reads).
pub fn parse(json: &[u8]) -> Result<Manifest<Text<'_>>, Error> {
    let m = decode::manifest(json).map_err(Error::Json)?;
    m.validate()?;
    Ok(m)
}

fn check_len<S: ManifestStr>(s: &S, what: &'static str, limit: usize) -> Result<(), Error> {
    if s.text().len() > limit {
        return Err(Error::TooLong { what, limit });
    }
    Ok(())
}

fn check_abs<S: ManifestStr>(s: &S, what: &'static str) -> Result<(), Error> {
    check_len(s, what, MAX_STR)?;
    if !s.text().starts_with('/') {
        return Err(Error::NotAbsolute { what });
    }
    Ok(())
}

fn check_name<S: ManifestStr>(s: &S, what: &'static str) -> Result<(), Error> {
    let t = s.text();
    if t.is_empty() {
        return Err(Error::Empty { what });
    }
    check_len(s, what, MAX_NAME)?;
    if !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(Error::BadName { what });
    }
    Ok(())
}

fn check_range(v: u64, what: &'static str, limit: u64) -> Result<(), Error> {
    if v > limit {
        return Err(Error::OutOfRange { what, limit });
    }
    Ok(())
}

impl<S: ManifestStr> Manifest<S> {
    /// Checks every limit; both sides call it, so the host never writes what the root
    /// server would refuse.
    pub fn validate(&self) -> Result<(), Error> {
        if self.version != FORMAT_VERSION {
            return Err(Error::Version { found: self.version });
        }
        if self.apps.is_empty() {
            return Err(Error::NoApps);
        }
        for (i, app) in self.apps.iter().enumerate() {
            app.validate()?;
            if self.apps[..i].iter().any(|a| a.name.text() == app.name.text()) {
                return Err(Error::DuplicateName);
            }
            if app.after.iter().any(|d| !self.apps[..i].iter().any(|a| a.name.text() == d.text())) {
                return Err(Error::UnknownAfter);
            }
        }
        let names = || self.apps.iter().flat_map(|a| a.spec.publishes.iter().chain(a.spec.consumes.iter()));
        let distinct = names().enumerate().filter(|(i, n)| !names().take(*i).any(|m| m.text() == n.text())).count();
        if distinct > MAX_IMAGE_CHANNELS {
            return Err(Error::TooLong { what: "the image's channels (distinct publishes and consumes names)", limit: MAX_IMAGE_CHANNELS });
        }
        if let Some(e) = &self.ends_with {
            if !self.apps.iter().any(|a| a.name.text() == e.text()) {
                return Err(Error::UnknownEndsWith);
            }
        }
        Ok(())
    }
}

impl<S: ManifestStr> App<S> {
    /// Checks this app's strings, lists and numbers.
    pub fn validate(&self) -> Result<(), Error> {
        check_name(&self.name, "app name")?;
        check_abs(&self.binary, "binary")?;
        check_abs(&self.cwd, "working directory")?;
        check_name(&self.rootfs, "rootfs name")?;
        if let Some(t) = &self.text {
            check_name(t, "text store name")?;
        }
        if self.argv.is_empty() {
            return Err(Error::Empty { what: "argv" });
        }
        for a in &self.argv {
            check_len(a, "argument", MAX_STR)?;
        }
        for e in &self.envp {
            check_len(e, "environment entry", MAX_STR)?;
            if !e.text().contains('=') {
                return Err(Error::BadEnv);
            }
        }
        let s = &self.spec;
        check_range(s.heap_pages.into(), "heap_pages", MAX_HEAP_PAGES.into())?;
        check_range(s.stack_pages.into(), "stack_pages", MAX_STACK_PAGES.into())?;
        if s.stack_pages == 0 {
            return Err(Error::Empty { what: "stack_pages" });
        }
        check_range(s.ut_4k_pages.into(), "ut_4k_pages", 1 << 20)?;
        check_range(s.ut_large_pages.into(), "ut_large_pages", 4096)?;
        if s.priority > s.max_priority {
            return Err(Error::PriorityAboveMax);
        }
        check_range(s.max_threads.into(), "max_threads", MAX_TASKS.into())?;
        check_range(s.max_processes.into(), "max_processes", MAX_TASKS.into())?;
        if s.max_threads == 0 || s.max_processes == 0 {
            return Err(Error::Empty { what: "max_threads and max_processes" });
        }
        for c in s.publishes.iter().chain(s.consumes.iter()) {
            check_name(c, "channel name")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn sample() -> &'static str {
        r#"{"version":1,"apps":[{"name":"hello","binary":"/hello","rootfs":"hello.cpio",
        "text":"hello.text","argv":["/hello","hello_world","a \"quoted\" \\ arg"],
        "envp":["PATH=/bin","HELLO=WORLD"],"cwd":"/","uid":0,"gid":0,
        "spec":{"heap_pages":2560,"stack_pages":64,"ut_4k_pages":24,"ut_large_pages":4,
        "priority":180,"max_priority":190,"publishes":["hello_protocol"],"consumes":[]}}]}"#
    }

    #[test]
    fn parses_and_unescapes() {
        let m = parse(sample().as_bytes()).unwrap();
        let app = &m.apps[0];
        assert_eq!(app.name.as_plain(), Some("hello"));
        assert_eq!(app.argv.len(), 3);
        assert_eq!(app.argv[2].as_plain(), None);
        let mut buf = [0u8; 64];
        assert_eq!(app.argv[2].unescape_into(&mut buf).unwrap(), "a \"quoted\" \\ arg");
        assert_eq!(app.spec.extra_untyped_bytes(), 24 * 4096 + 4 * 2 * 1024 * 1024);
        assert_eq!(app.spec.publishes[0].raw(), "hello_protocol");
    }

    #[test]
    fn unescape_buffer_too_small_is_an_error() {
        let m = parse(sample().as_bytes()).unwrap();
        let mut buf = [0u8; 4];
        assert!(matches!(m.apps[0].argv[2].unescape_into(&mut buf), Err(Error::TooLong { .. })));
    }

    fn with(from: &str, to: &str) -> alloc_free::Buf {
        alloc_free::Buf::replaced(sample(), from, to)
    }

    #[test]
    fn rejects_invalid_values() {
        let cases: &[(&str, &str, Error)] = &[
            (r#""version":1"#, r#""version":2"#, Error::Version { found: 2 }),
            (r#""binary":"/hello""#, r#""binary":"hello""#, Error::NotAbsolute { what: "binary" }),
            (r#""cwd":"/""#, r#""cwd":"""#, Error::NotAbsolute { what: "working directory" }),
            (r#""name":"hello""#, r#""name":"he llo""#, Error::BadName { what: "app name" }),
            (r#""name":"hello""#, r#""name":"""#, Error::Empty { what: "app name" }),
            (r#""priority":180"#, r#""priority":191"#, Error::PriorityAboveMax),
            (r#""HELLO=WORLD""#, r#""HELLO""#, Error::BadEnv),
            (
                r#""heap_pages":2560"#,
                r#""heap_pages":262145"#,
                Error::OutOfRange { what: "heap_pages", limit: MAX_HEAP_PAGES as u64 },
            ),
            (r#""stack_pages":64"#, r#""stack_pages":0"#, Error::Empty { what: "stack_pages" }),
            (r#""argv":["/hello","hello_world","a \"quoted\" \\ arg"]"#, r#""argv":[]"#, Error::Empty { what: "argv" }),
        ];
        for (from, to, want) in cases {
            let b = with(from, to);
            assert_eq!(parse(b.as_bytes()).unwrap_err(), *want, "{from} -> {to}");
        }
    }

    #[test]
    fn rejects_out_of_type_range_and_garbage() {
        assert!(matches!(parse(with(r#""priority":180"#, r#""priority":256"#).as_bytes()), Err(Error::Json(_))));
        assert!(matches!(parse(b"{\"version\":1"), Err(Error::Json(_))));
        assert!(matches!(parse(b"[]"), Err(Error::Json(_))));
        assert!(matches!(parse(br#"{"version":1,"apps":[]}"#), Err(Error::NoApps)));
    }

    /// Two apps whose publishes and consumes name `distinct` channels between them.
    fn two_apps_with_channels(distinct: usize) -> alloc_free::Buf {
        let app = |name: &str, from: usize| {
            let mut b = alloc_free::Buf::new();
            let list = |b: &mut alloc_free::Buf, at: usize| {
                for i in at..(at + 8).min(distinct) {
                    b.push(if i > at { ",\"c" } else { "\"c" });
                    b.push(std::format!("{i}\"").as_str());
                }
            };
            b.push(std::format!(r#"{{"name":"{name}","binary":"/a","rootfs":"r.cpio","argv":["/a"],"envp":[],"cwd":"/","uid":0,"gid":0,"spec":{{"heap_pages":1,"stack_pages":1,"ut_4k_pages":0,"ut_large_pages":0,"priority":1,"max_priority":1,"publishes":["#).as_str());
            list(&mut b, from);
            b.push(r#"],"consumes":["#);
            list(&mut b, from + 8);
            b.push("]}}");
            std::string::String::from(b.as_str())
        };
        let mut b = alloc_free::Buf::new();
        b.push(std::format!(r#"{{"version":1,"apps":[{},{}]}}"#, app("a", 0), app("b", 16)).as_str());
        b
    }

    #[test]
    fn an_image_has_at_most_16_channels() {
        assert!(parse(two_apps_with_channels(16).as_bytes()).is_ok());
        assert_eq!(
            parse(two_apps_with_channels(17).as_bytes()).unwrap_err(),
            Error::TooLong { what: "the image's channels (distinct publishes and consumes names)", limit: MAX_IMAGE_CHANNELS }
        );
    }

    #[test]
    fn rejects_too_many_args() {
        let mut args = alloc_free::Buf::new();
        args.push("\"argv\":[");
        for i in 0..=MAX_ARGS {
            if i > 0 {
                args.push(",");
            }
            args.push("\"x\"");
        }
        args.push("]");
        let b = with(r#""argv":["/hello","hello_world","a \"quoted\" \\ arg"]"#, args.as_str());
        assert!(matches!(parse(b.as_bytes()), Err(Error::Json(_))));
    }

    #[test]
    fn rejects_duplicate_names() {
        let s = sample();
        let start = s.find("{\"name\"").unwrap();
        let end = s.rfind(']').unwrap();
        let app = &s[start..end];
        let mut b = alloc_free::Buf::new();
        b.push(&s[..end]);
        b.push(",");
        b.push(app);
        b.push(&s[end..]);
        assert_eq!(parse(b.as_bytes()).unwrap_err(), Error::DuplicateName);
    }

    #[test]
    fn a_held_app_starts_when_all_completed_and_never_after_a_failure() {
        use super::{release, Dependency, Release};
        let stand = |states: &[(&'static str, Dependency<&'static str>)]| {
            let states = states.to_vec();
            release(states.iter().map(|(n, _)| *n).collect::<std::vec::Vec<_>>(), move |d| states.iter().find(|(n, _)| *n == d).unwrap().1.clone())
        };
        use Dependency::{Completed, Failed, Pending};
        assert_eq!(stand(&[]), Release::Start);
        assert_eq!(stand(&[("a", Completed), ("b", Completed)]), Release::Start);
        assert_eq!(stand(&[("a", Completed), ("b", Pending)]), Release::Wait);
        // A failure decides at once, even before a pending one ends, and the first one is named.
        assert_eq!(stand(&[("a", Pending), ("b", Failed("b exited with status 2"))]), Release::Never("b exited with status 2"));
        assert_eq!(stand(&[("a", Failed("a was killed")), ("b", Failed("b too"))]), Release::Never("a was killed"));
    }

    #[test]
    fn after_names_an_earlier_app() {
        let two = |a_after: &str, b_after: &str| {
            std::format!(
                r#"{{"version":1,"apps":[{{"name":"a","binary":"/a","rootfs":"r","argv":["/a"],"envp":[],"cwd":"/","uid":0,"gid":0,"after":[{a_after}],"spec":{{"heap_pages":0,"stack_pages":1,"ut_4k_pages":0,"ut_large_pages":0,"priority":1,"max_priority":1,"publishes":[],"consumes":[]}}}},{{"name":"b","binary":"/b","rootfs":"r","argv":["/b"],"envp":[],"cwd":"/","uid":0,"gid":0,"after":[{b_after}],"spec":{{"heap_pages":0,"stack_pages":1,"ut_4k_pages":0,"ut_large_pages":0,"priority":1,"max_priority":1,"publishes":[],"consumes":[]}}}}]}}"#
            )
        };
        let json = two("", "\"a\"");
        let m = parse(json.as_bytes()).unwrap();
        assert_eq!(m.apps[1].after.iter().map(|t| t.text()).collect::<std::vec::Vec<_>>(), ["a"]);
        assert!(m.apps[0].after.is_empty());
        // Itself, a later app, or none at all.
        assert_eq!(parse(two("", "\"b\"").as_bytes()).unwrap_err(), Error::UnknownAfter);
        assert_eq!(parse(two("\"b\"", "").as_bytes()).unwrap_err(), Error::UnknownAfter);
        assert_eq!(parse(two("", "\"c\"").as_bytes()).unwrap_err(), Error::UnknownAfter);
    }

    /// What serde-json-core's generic deserializer makes of `json` (the reader's model).
    fn by_serde(json: &[u8]) -> Result<Manifest<Text<'_>>, serde_json_core::de::Error> {
        serde_json_core::from_slice::<Manifest<Text<'_>>>(json).map(|(m, _)| m)
    }

    #[test]
    fn reads_what_serde_json_core_reads() {
        let accepted: &[&str] = &[
            sample(),
            // Whitespace everywhere, members in another order, unknown members of every
            // kind skipped, `text` null, the defaulted members missing, trailing whitespace.
            " { \"apps\" : [ { \"spec\" : { \"consumes\" : [ ] , \"publishes\" : [ \"p\" ] , \"max_priority\" : 9 ,
              \"priority\" : 0 , \"ut_large_pages\" : 0 , \"ut_4k_pages\" : 4294967295 , \"stack_pages\" : 1 ,
              \"heap_pages\" : 1 , \"future\" : { \"a\" : [ 1 , \"]}\\\"\" , { } ] } } , \"text\" : null , \"gid\" : 7 ,
              \"uid\" : 0 , \"cwd\" : \"/\" , \"envp\" : [ \"A=\\u00e9\" ] , \"argv\" : [ \"/a\" , \"b\" ] ,
              \"rootfs\" : \"r.cpio\" , \"binary\" : \"/a\" , \"name\" : \"a\" , \"more\" : 12.5e3 , \"flag\" : true } ] ,
              \"version\" : 1 , \"note\" : \"x\" } \n\t",
            r#"{"version":1,"ends_with":"a","apps":[{"name":"a","binary":"/a","rootfs":"r","argv":["/a"],"envp":[],"cwd":"/","uid":0,"gid":0,"networks":["n1","n2"],"after":["z"],"spec":{"heap_pages":1,"stack_pages":1,"ut_4k_pages":0,"ut_large_pages":0,"priority":1,"max_priority":1,"max_threads":3,"max_processes":2,"rootfs_write_bytes":18446744073709551615,"publishes":[],"consumes":[]}}]}"#,
            r#"{"version":1,"ends_with":null,"apps":[{"name":"a","binary":"/a","rootfs":"r","text":"t","argv":["/a"],"envp":[],"cwd":"/","uid":0,"gid":0,"spec":{"heap_pages":0,"stack_pages":1,"ut_4k_pages":0,"ut_large_pages":0,"priority":255,"max_priority":255,"publishes":[],"consumes":[]}}]}"#,
        ];
        for json in accepted {
            let want = by_serde(json.as_bytes()).unwrap_or_else(|e| panic!("serde-json-core refused {json}: {e:?}"));
            assert_eq!(decode::manifest(json.as_bytes()), Ok(want), "{json}");
        }
        let s = sample();
        let app = &s[s.find("{\"name\"").unwrap()..s.rfind(']').unwrap()];
        let refused: std::vec::Vec<std::string::String> = std::vec![
            s[..s.len() - 1].into(),
            std::format!("{s} x"),
            s.replace("2560", "-1"),
            s.replace("2560", "01"),
            s.replace("2560", "4294967296"),
            s.replace("\"priority\":180", "\"priority\":256"),
            s.replace("\"priority\":180", "\"priority\":\"180\""),
            s.replace("\"cwd\":\"/\"", "\"cwd\":null"),
            s.replace("\"cwd\":\"/\",", ""),
            s.replace("\"uid\":0", "\"uid\":0,\"uid\":1"),
            s.replace("\"text\":\"hello.text\"", "\"text\":nul"),
            s.replace("\"version\":1", "\"version\" 1"),
            s.replace("\"version\":1,", "\"version\":1 "),
            s.replace("\"version\":1", "\"version\":1,\"x\":"),
            s.replace("\"consumes\":[]", "\"consumes\":[,]"),
            s.replace("\"consumes\":[]", "\"consumes\":[\"a\" \"b\"]"),
            s.replace("[{", "[{}"),
            std::format!("{}{}{}{}", &s[..s.rfind(']').unwrap()], (0..8).map(|_| std::format!(",{app}")).collect::<std::string::String>(), "", &s[s.rfind(']').unwrap()..]),
            "{\"version\":1,\"apps\":[],\"x\":\"\\".into(),
            "".into(),
            "{".into(),
            "{1:2}".into(),
        ];
        for json in &refused {
            assert!(by_serde(json.as_bytes()).is_err(), "serde-json-core accepted {json}");
            assert!(decode::manifest(json.as_bytes()).is_err(), "the reader accepted {json}");
        }
    }

    /// A fixed buffer for building test inputs without an allocator.
    mod alloc_free {
        pub struct Buf {
            data: [u8; 8192],
            len: usize,
        }
        impl Buf {
            pub fn new() -> Self {
                Buf { data: [0; 8192], len: 0 }
            }
            pub fn push(&mut self, s: &str) {
                self.data[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
                self.len += s.len();
            }
            pub fn replaced(src: &str, from: &str, to: &str) -> Self {
                let i = src.find(from).expect("pattern in sample");
                let mut b = Buf::new();
                b.push(&src[..i]);
                b.push(to);
                b.push(&src[i + from.len()..]);
                b
            }
            pub fn as_bytes(&self) -> &[u8] {
                &self.data[..self.len]
            }
            pub fn as_str(&self) -> &str {
                core::str::from_utf8(self.as_bytes()).unwrap()
            }
        }
    }
}
