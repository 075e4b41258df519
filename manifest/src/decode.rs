//! The root server's reader of `manifest.json`: a small JSON decoder made for
//! `Manifest<Text<'_>>` alone, in place of serde-json-core's generic deserializer.
//!
//! The root server parses the manifest once per boot, and under QEMU's TCG the first run of
//! any code costs mostly its translation: serde-json-core's visitors for the manifest's
//! structs took about 2 700 guest instructions to translate, this reader about a quarter of
//! that (issue 11, boot time; `qemu/measure-tcg`). It reads what serde-json-core read and
//! fails where it failed: strings stay escaped ([`Text`]), unknown fields are skipped, an
//! `Option` field may be `null` or missing, the `#[serde(default)]` fields may be missing,
//! a duplicate or missing field, a list over its capacity and a number out of its type's
//! range are errors, and so is anything but whitespace after the manifest's object.

use crate::{App, Manifest, Spec, Text};
use heapless::Vec;
use serde_json_core::de::Error as JsonError;

type R<T> = Result<T, JsonError>;

/// Where the reader is in the JSON text.
struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

/// Stores a field's value, refusing a second one (serde's `duplicate_field`).
fn set<T>(slot: &mut Option<T>, v: T) -> R<()> {
    if slot.is_some() {
        return Err(JsonError::CustomError);
    }
    *slot = Some(v);
    Ok(())
}

/// A required field's value (serde's `missing_field`).
fn need<T>(slot: Option<T>) -> R<T> {
    slot.ok_or(JsonError::CustomError)
}

impl<'a> Reader<'a> {
    /// The next byte that is not whitespace, left unread.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.s.get(self.i) {
            if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(b);
            }
            self.i += 1;
        }
        None
    }

    /// Reads byte `b` (after whitespace), or fails with `err`.
    fn eat(&mut self, b: u8, err: JsonError) -> R<()> {
        match self.peek() {
            Some(c) if c == b => {
                self.i += 1;
                Ok(())
            }
            Some(_) => Err(err),
            None => Err(JsonError::EofWhileParsingValue),
        }
    }

    /// A string, as it stands between its quotes (still escaped).
    fn string(&mut self) -> R<&'a str> {
        self.eat(b'"', JsonError::InvalidType)?;
        let start = self.i;
        loop {
            match self.s.get(self.i) {
                Some(b'"') => {
                    let end = self.i;
                    self.i += 1;
                    return core::str::from_utf8(&self.s[start..end]).map_err(|_| JsonError::InvalidUnicodeCodePoint);
                }
                // An escape: the next byte, a quote too, belongs to the string.
                Some(b'\\') => self.i += 2,
                Some(_) => self.i += 1,
                None => return Err(JsonError::EofWhileParsingString),
            }
        }
    }

    fn text(&mut self) -> R<Text<'a>> {
        self.string().map(Text)
    }

    /// `null` (None) or a string.
    fn opt_text(&mut self) -> R<Option<Text<'a>>> {
        if self.peek() != Some(b'n') {
            return self.text().map(Some);
        }
        let end = self.i + 4;
        match self.s.get(self.i..end) {
            Some(b"null") => {
                self.i = end;
                Ok(None)
            }
            Some(_) => Err(JsonError::ExpectedSomeIdent),
            None => Err(JsonError::EofWhileParsingValue),
        }
    }

    /// An unsigned integer no larger than `max`.
    fn number(&mut self, max: u64) -> R<u64> {
        let first = match self.peek() {
            Some(b @ b'0'..=b'9') => b,
            Some(_) => return Err(JsonError::InvalidType),
            None => return Err(JsonError::EofWhileParsingValue),
        };
        self.i += 1;
        let mut v = u64::from(first - b'0');
        while let Some(&b @ b'0'..=b'9') = self.s.get(self.i) {
            if first == b'0' {
                return Err(JsonError::InvalidNumber);
            }
            v = v.checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0'))).ok_or(JsonError::InvalidNumber)?;
            self.i += 1;
        }
        if v > max {
            return Err(JsonError::InvalidNumber);
        }
        Ok(v)
    }

    fn u32(&mut self) -> R<u32> {
        self.number(u32::MAX.into()).map(|v| v as u32)
    }

    fn u8(&mut self) -> R<u8> {
        self.number(u8::MAX.into()).map(|v| v as u8)
    }

    /// A list, each element read by `elem`.
    fn seq(&mut self, elem: &mut dyn FnMut(&mut Self) -> R<()>) -> R<()> {
        self.eat(b'[', JsonError::InvalidType)?;
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            elem(self)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(_) => return Err(JsonError::ExpectedListCommaOrEnd),
                None => return Err(JsonError::EofWhileParsingList),
            }
        }
    }

    /// A list of strings, at most `N`.
    fn texts<const N: usize>(&mut self) -> R<Vec<Text<'a>, N>> {
        let mut v = Vec::new();
        self.seq(&mut |r| {
            let t = r.text()?;
            v.push(t).map_err(|_| JsonError::CustomError)
        })?;
        Ok(v)
    }

    /// An object, each member's value read by `field` given its (escaped) key.
    fn object(&mut self, field: &mut dyn FnMut(&mut Self, &'a str) -> R<()>) -> R<()> {
        self.eat(b'{', JsonError::InvalidType)?;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let key = match self.peek() {
                Some(b'"') => self.string()?,
                Some(_) => return Err(JsonError::KeyMustBeAString),
                None => return Err(JsonError::EofWhileParsingObject),
            };
            self.eat(b':', JsonError::ExpectedColon)?;
            field(self, key)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(_) => return Err(JsonError::ExpectedObjectCommaOrEnd),
                None => return Err(JsonError::EofWhileParsingObject),
            }
        }
    }

    /// Skips the value of a member we do not know, as serde-json-core's
    /// `deserialize_ignored_any` did: strings, lists and objects whole (brackets counted,
    /// strings read as strings), anything else up to the next `,`, `}` or `]`.
    fn skip(&mut self) -> R<()> {
        match self.peek() {
            None => Err(JsonError::EofWhileParsingValue),
            Some(b'"') => self.string().map(|_| ()),
            Some(b',' | b'}' | b']') => Err(JsonError::ExpectedSomeValue),
            Some(b'[' | b'{') => {
                let mut depth = 0usize;
                loop {
                    match self.s.get(self.i) {
                        Some(b'"') => {
                            self.string()?;
                            continue;
                        }
                        Some(b'[' | b'{') => depth += 1,
                        Some(b']' | b'}') => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Ok(());
                            }
                        }
                        Some(_) => {}
                        None => return Err(JsonError::EofWhileParsingValue),
                    }
                    self.i += 1;
                }
            }
            Some(_) => loop {
                match self.s.get(self.i) {
                    Some(b',' | b'}' | b']') => return Ok(()),
                    Some(_) => self.i += 1,
                    None => return Err(JsonError::EofWhileParsingString),
                }
            },
        }
    }

    fn spec(&mut self) -> R<Spec<Text<'a>>> {
        let (mut heap, mut stack, mut ut4k, mut utl, mut prio, mut maxp) = (None, None, None, None, None, None);
        let (mut threads, mut procs, mut publishes, mut consumes, mut rootfs_write) = (None, None, None, None, None);
        self.object(&mut |r, key| match key {
            "heap_pages" => set(&mut heap, r.u32()?),
            "stack_pages" => set(&mut stack, r.u32()?),
            "ut_4k_pages" => set(&mut ut4k, r.u32()?),
            "ut_large_pages" => set(&mut utl, r.u32()?),
            "priority" => set(&mut prio, r.u8()?),
            "max_priority" => set(&mut maxp, r.u8()?),
            "max_threads" => set(&mut threads, r.u32()?),
            "max_processes" => set(&mut procs, r.u32()?),
            "rootfs_write_bytes" => set(&mut rootfs_write, r.number(u64::MAX)?),
            "publishes" => set(&mut publishes, r.texts()?),
            "consumes" => set(&mut consumes, r.texts()?),
            _ => r.skip(),
        })?;
        Ok(Spec {
            heap_pages: need(heap)?,
            stack_pages: need(stack)?,
            ut_4k_pages: need(ut4k)?,
            ut_large_pages: need(utl)?,
            priority: need(prio)?,
            max_priority: need(maxp)?,
            max_threads: threads.unwrap_or(crate::defaults::MAX_THREADS),
            max_processes: procs.unwrap_or(crate::defaults::MAX_PROCESSES),
            rootfs_write_bytes: rootfs_write.unwrap_or(crate::defaults::ROOTFS_WRITE_BYTES),
            publishes: need(publishes)?,
            consumes: need(consumes)?,
        })
    }

    fn app(&mut self) -> R<App<Text<'a>>> {
        let (mut name, mut binary, mut rootfs, mut text, mut argv, mut envp) = (None, None, None, None, None, None);
        let (mut cwd, mut uid, mut gid, mut spec, mut networks, mut after) = (None, None, None, None, None, None);
        self.object(&mut |r, key| match key {
            "name" => set(&mut name, r.text()?),
            "binary" => set(&mut binary, r.text()?),
            "rootfs" => set(&mut rootfs, r.text()?),
            "text" => set(&mut text, r.opt_text()?),
            "argv" => set(&mut argv, r.texts()?),
            "envp" => set(&mut envp, r.texts()?),
            "cwd" => set(&mut cwd, r.text()?),
            "uid" => set(&mut uid, r.u32()?),
            "gid" => set(&mut gid, r.u32()?),
            "spec" => set(&mut spec, r.spec()?),
            "networks" => set(&mut networks, r.texts()?),
            "after" => set(&mut after, r.texts()?),
            _ => r.skip(),
        })?;
        Ok(App {
            name: need(name)?,
            binary: need(binary)?,
            rootfs: need(rootfs)?,
            text: text.flatten(),
            argv: need(argv)?,
            envp: need(envp)?,
            cwd: need(cwd)?,
            uid: need(uid)?,
            gid: need(gid)?,
            spec: need(spec)?,
            networks: networks.unwrap_or_default(),
            after: after.unwrap_or_default(),
        })
    }

    fn manifest(&mut self) -> R<Manifest<Text<'a>>> {
        let (mut version, mut apps, mut ends_with) = (None, None, None);
        self.object(&mut |r, key| match key {
            "version" => set(&mut version, r.u32()?),
            "apps" => {
                let mut v = Vec::new();
                r.seq(&mut |r| {
                    let app = r.app()?;
                    v.push(app).map_err(|_| JsonError::CustomError)
                })?;
                set(&mut apps, v)
            }
            "ends_with" => set(&mut ends_with, r.opt_text()?),
            _ => r.skip(),
        })?;
        Ok(Manifest { version: need(version)?, apps: need(apps)?, ends_with: ends_with.flatten() })
    }
}

/// Reads a manifest (not yet validated): one object, with nothing but whitespace around it.
pub fn manifest(json: &[u8]) -> R<Manifest<Text<'_>>> {
    let mut r = Reader { s: json, i: 0 };
    let m = r.manifest()?;
    match r.peek() {
        Some(_) => Err(JsonError::TrailingCharacters),
        None => Ok(m),
    }
}
