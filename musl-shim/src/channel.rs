//! Channels: the manifest's `publishes` and `consumes`, a named message bus between the
//! apps of one image (the seed's `com.koskit.app.spec.publishes`).
//!
//! An app sees each of its channels as `/dev/selkie/channels/NAME`. A publisher opens it
//! for writing, and each `write` is one message of at most [`MAX_MESSAGE`] bytes
//! (`EMSGSIZE` beyond). A consumer opens it for reading, and each `read` returns one whole
//! message (cut to the buffer, as a datagram is). Every open for reading has its own
//! cursor, so every consumer sees every message. The channel keeps the last [`SLOTS`]
//! messages: a consumer that opens late starts at the oldest one kept, and a publisher
//! that would overwrite a message an open consumer has not read yet waits (or gets
//! `EAGAIN` with `O_NONBLOCK`). A read with nothing new waits, or returns 0 when a
//! publisher has been and none has the channel open any more. `poll` and `epoll` see both
//! ends. Opening a channel the app does not publish (for writing) or consume (for
//! reading) is `EACCES`.
//!
//! The messages live in a ring of [`RING_BYTES`] in [`RingMemory`], laid out as
//! [`Header`] and slots below. The root server keeps the ring in frames of its own and
//! maps them read-only into a consumer that `mmap`s the channel (`PROT_READ`,
//! `MAP_SHARED`), so the consumer can read messages without a syscall; the emulator's
//! ring is ordinary memory, and an `mmap` there gives a copy of the ring as it was.

use crate::errno::*;
use crate::fd::{Cx, FileObject};
use crate::pipe::{bump, IoGen, POLLHUP, POLLIN, POLLOUT};
use crate::stat::Stat;
use crate::vfs::Ino;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

/// Bytes of one channel's ring: four pages.
pub const RING_BYTES: usize = 16384;
/// Messages a ring keeps.
pub const SLOTS: usize = 16;
/// Bytes of the ring's header.
pub const HEADER_BYTES: usize = 64;
/// Bytes of one slot: its own 16-byte header (sequence number, length) and the message.
pub const SLOT_BYTES: usize = 1016;
/// The longest message.
pub const MAX_MESSAGE: usize = SLOT_BYTES - 16;
/// The ring's first bytes.
pub const MAGIC: [u8; 8] = *b"SELKCHAN";
/// The most channels one image has (every app's publishes and consumes, without repeats).
pub const MAX_CHANNELS: usize = 16;
/// The major device number of /dev/selkie/channels/* (a local/experimental one).
pub const CHANNEL_MAJOR: u32 = 240;

const _: () = assert!(HEADER_BYTES + SLOTS * SLOT_BYTES <= RING_BYTES);

/// The ring's header, little-endian at offset 0:
/// - 0..8 [`MAGIC`]; 8..12 version (1); 12..16 [`SLOTS`]; 16..20 [`SLOT_BYTES`];
/// - 20..24 [`MAX_MESSAGE`]; 24..32 messages published so far (the next sequence number);
/// - 32..64 the channel's name, NUL-padded (cut at 32 bytes).
///
/// Message `seq` is in slot `seq % SLOTS` at `HEADER_BYTES + slot * SLOT_BYTES`: its
/// sequence number (8 bytes), its length (4), 4 zero bytes, then the message. The slot is
/// written before the header's count, so a reader that sees the count sees the message.
pub struct Header;

impl Header {
    pub const COUNT: usize = 24;
    pub const NAME: usize = 32;
}

/// Where a ring's bytes are: ordinary memory, or frames the runner can map into apps.
pub trait RingMemory {
    fn read(&self, off: usize, buf: &mut [u8]);
    fn write(&mut self, off: usize, bytes: &[u8]);
    /// The ring's address in the runner's own memory, when its pages can be mapped into
    /// an app (see `AddressSpace::map_runner_pages`).
    fn runner_addr(&self) -> Option<usize> {
        None
    }
}

/// A ring in ordinary memory (the emulator's).
pub struct HeapRing(pub Vec<u8>);

impl Default for HeapRing {
    fn default() -> Self {
        HeapRing(alloc::vec![0; RING_BYTES])
    }
}

impl RingMemory for HeapRing {
    fn read(&self, off: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0[off..off + buf.len()]);
    }
    fn write(&mut self, off: usize, bytes: &[u8]) {
        self.0[off..off + bytes.len()].copy_from_slice(bytes);
    }
}

struct Channel {
    name: String,
    ring: Box<dyn RingMemory>,
    /// Messages published so far.
    count: u64,
    /// Open reads: (id, next sequence number to read).
    readers: Vec<(u64, u64)>,
    writers: usize,
    /// A publisher has had it open (a read past the last message then ends).
    had_writer: bool,
}

impl Channel {
    fn slot_at(seq: u64) -> usize {
        HEADER_BYTES + (seq % SLOTS as u64) as usize * SLOT_BYTES
    }

    /// The oldest message an open reader still needs.
    fn oldest_needed(&self) -> u64 {
        self.readers.iter().map(|r| r.1).min().unwrap_or(self.count)
    }

    fn publish(&mut self, msg: &[u8]) -> SysResult<usize> {
        if msg.len() > MAX_MESSAGE {
            return Err(EMSGSIZE);
        }
        if self.count - self.oldest_needed() >= SLOTS as u64 {
            return Err(EBLOCK);
        }
        let at = Self::slot_at(self.count);
        let mut head = [0u8; 16];
        head[..8].copy_from_slice(&self.count.to_le_bytes());
        head[8..12].copy_from_slice(&(msg.len() as u32).to_le_bytes());
        self.ring.write(at + 16, msg);
        self.ring.write(at, &head);
        self.count += 1;
        self.ring.write(Header::COUNT, &self.count.to_le_bytes());
        Ok(msg.len())
    }

    fn next_len(&self, seq: u64) -> usize {
        let mut len = [0u8; 4];
        self.ring.read(Self::slot_at(seq) + 8, &mut len);
        (u32::from_le_bytes(len) as usize).min(MAX_MESSAGE)
    }

    fn ended(&self) -> bool {
        self.writers == 0 && self.had_writer
    }
}

/// Every channel of one image, shared by the apps that use them.
#[derive(Default)]
pub struct Bus {
    channels: Vec<Channel>,
    next_reader: u64,
}

/// A bus shared between apps.
pub type SharedBus = Rc<RefCell<Bus>>;

impl Bus {
    /// Adds channel `name` with its ring in `ring` (written with a fresh header), or finds
    /// it; its index.
    pub fn add(&mut self, name: &str, mut ring: Box<dyn RingMemory>) -> SysResult<usize> {
        if let Some(i) = self.find(name) {
            return Ok(i);
        }
        if self.channels.len() >= MAX_CHANNELS {
            return Err(ENOSPC);
        }
        let mut head = [0u8; HEADER_BYTES];
        head[..8].copy_from_slice(&MAGIC);
        head[8..12].copy_from_slice(&1u32.to_le_bytes());
        head[12..16].copy_from_slice(&(SLOTS as u32).to_le_bytes());
        head[16..20].copy_from_slice(&(SLOT_BYTES as u32).to_le_bytes());
        head[20..24].copy_from_slice(&(MAX_MESSAGE as u32).to_le_bytes());
        let n = name.len().min(HEADER_BYTES - Header::NAME);
        head[Header::NAME..Header::NAME + n].copy_from_slice(&name.as_bytes()[..n]);
        ring.write(0, &head);
        self.channels.push(Channel { name: String::from(name), ring, count: 0, readers: Vec::new(), writers: 0, had_writer: false });
        Ok(self.channels.len() - 1)
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.name == name)
    }

    pub fn name(&self, ch: usize) -> &str {
        &self.channels[ch].name
    }

    /// Messages published on channel `ch` so far.
    pub fn count(&self, ch: usize) -> u64 {
        self.channels[ch].count
    }

    /// The channels, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.channels.iter().map(|c| c.name.as_str())
    }
}

/// The image's channels: every name its apps publish or consume (`(publishes, consumes)`
/// per app), each once, in the order the apps name them. Both runners build their bus
/// from it, so a channel has the same number (the minor of its device) in each.
pub fn plan<'n>(apps: &[(&[&'n str], &[&'n str])]) -> Vec<&'n str> {
    let mut names: Vec<&str> = Vec::new();
    for (p, c) in apps {
        for n in p.iter().chain(c.iter()) {
            if !names.contains(n) {
                names.push(n);
            }
        }
    }
    names
}

/// An open channel: a publisher's end, a consumer's, or both (`O_RDWR`).
pub struct ChannelEnd {
    bus: SharedBus,
    ch: usize,
    reader: Option<u64>,
    writer: bool,
    gen: IoGen,
    ino: Ino,
}

impl ChannelEnd {
    /// Opens channel `ch` to read and/or write.
    pub fn open(bus: &SharedBus, gen: &IoGen, ch: usize, read: bool, write: bool, ino: Ino) -> ChannelEnd {
        let mut b = bus.borrow_mut();
        let reader = read.then(|| {
            b.next_reader += 1;
            let id = b.next_reader;
            let c = &mut b.channels[ch];
            let start = c.count.saturating_sub(SLOTS as u64);
            c.readers.push((id, start));
            id
        });
        if write {
            let c = &mut b.channels[ch];
            c.writers += 1;
            c.had_writer = true;
        }
        drop(b);
        bump(gen);
        ChannelEnd { bus: bus.clone(), ch, reader, writer: write, gen: gen.clone(), ino }
    }

    fn cursor(&self) -> Option<u64> {
        let id = self.reader?;
        self.bus.borrow().channels[self.ch].readers.iter().find(|r| r.0 == id).map(|r| r.1)
    }

    /// What `mmap` of this channel shares: the ring's address in the runner (when its
    /// pages can be mapped into the app), and a copy of its bytes.
    pub fn ring(&self) -> (Option<usize>, Vec<u8>) {
        let b = self.bus.borrow();
        let c = &b.channels[self.ch];
        let mut bytes = alloc::vec![0u8; RING_BYTES];
        c.ring.read(0, &mut bytes);
        (c.ring.runner_addr(), bytes)
    }
}

impl<'a> FileObject<'a> for ChannelEnd {
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        let id = self.reader.ok_or(EBADF)?;
        let mut b = self.bus.borrow_mut();
        let c = &mut b.channels[self.ch];
        let Some(i) = c.readers.iter().position(|r| r.0 == id) else { return Err(EBADF) };
        let seq = c.readers[i].1;
        if seq >= c.count {
            return if c.ended() { Ok(0) } else { Err(EBLOCK) };
        }
        let n = c.next_len(seq).min(buf.len());
        c.ring.read(Channel::slot_at(seq) + 16, &mut buf[..n]);
        c.readers[i].1 = seq + 1;
        drop(b);
        // Room for a waiting publisher.
        bump(&self.gen);
        Ok(n)
    }
    fn write(&mut self, _cx: &mut Cx<'_, 'a>, buf: &[u8], _append: bool) -> SysResult<usize> {
        if !self.writer {
            return Err(EBADF);
        }
        let n = self.bus.borrow_mut().channels[self.ch].publish(buf)?;
        bump(&self.gen);
        Ok(n)
    }
    fn stat(&self, cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(Stat::of_node(cx.vfs, self.ino))
    }
    fn ino(&self) -> Option<Ino> {
        Some(self.ino)
    }
    fn poll(&self, _cx: &Cx<'_, 'a>) -> u16 {
        let b = self.bus.borrow();
        let c = &b.channels[self.ch];
        let mut r = 0;
        if let Some(seq) = self.cursor() {
            if seq < c.count {
                r |= POLLIN;
            } else if c.ended() {
                r |= POLLHUP;
            }
        }
        if self.writer && c.count - c.oldest_needed() < SLOTS as u64 {
            r |= POLLOUT;
        }
        r
    }
    /// The next message's length (as for a datagram socket).
    fn fionread(&self) -> Option<usize> {
        let seq = self.cursor()?;
        let b = self.bus.borrow();
        let c = &b.channels[self.ch];
        Some(if seq < c.count { c.next_len(seq) } else { 0 })
    }
    fn as_channel(&self) -> Option<&ChannelEnd> {
        Some(self)
    }
}

impl Drop for ChannelEnd {
    fn drop(&mut self) {
        let mut b = self.bus.borrow_mut();
        let c = &mut b.channels[self.ch];
        if let Some(id) = self.reader {
            c.readers.retain(|r| r.0 != id);
        }
        if self.writer {
            c.writers -= 1;
        }
        drop(b);
        bump(&self.gen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus() -> (SharedBus, IoGen) {
        let bus: SharedBus = Default::default();
        bus.borrow_mut().add("hello_protocol", Box::new(HeapRing::default())).unwrap();
        (bus, Default::default())
    }

    fn publish(e: &mut ChannelEnd, m: &[u8]) -> SysResult<usize> {
        e.bus.borrow_mut().channels[e.ch].publish(m)
    }

    fn take(e: &ChannelEnd) -> SysResult<Vec<u8>> {
        let id = e.reader.unwrap();
        let mut b = e.bus.borrow_mut();
        let c = &mut b.channels[e.ch];
        let i = c.readers.iter().position(|r| r.0 == id).unwrap();
        let seq = c.readers[i].1;
        if seq >= c.count {
            return if c.ended() { Ok(Vec::new()) } else { Err(EBLOCK) };
        }
        let mut m = alloc::vec![0; c.next_len(seq)];
        c.ring.read(Channel::slot_at(seq) + 16, &mut m);
        c.readers[i].1 += 1;
        Ok(m)
    }

    #[test]
    fn every_consumer_sees_every_message_and_the_slowest_holds_the_publisher() {
        let (bus, gen) = bus();
        let mut p = ChannelEnd::open(&bus, &gen, 0, false, true, 0);
        let a = ChannelEnd::open(&bus, &gen, 0, true, false, 0);
        let b = ChannelEnd::open(&bus, &gen, 0, true, false, 0);
        for i in 0..SLOTS {
            publish(&mut p, alloc::format!("m{i}").as_bytes()).unwrap();
        }
        assert_eq!(publish(&mut p, b"over"), Err(EBLOCK));
        assert_eq!(take(&a).unwrap(), b"m0");
        assert_eq!(publish(&mut p, b"over"), Err(EBLOCK), "b has not read m0");
        assert_eq!(take(&b).unwrap(), b"m0");
        assert_eq!(publish(&mut p, b"m16"), Ok(3));
        for i in 1..=SLOTS {
            assert_eq!(take(&a).unwrap(), alloc::format!("m{i}").as_bytes());
        }
        assert_eq!(take(&a), Err(EBLOCK));
        drop(p);
        assert_eq!(take(&a).unwrap(), b"", "no publisher left: end of channel");
        assert_eq!(publish(&mut ChannelEnd::open(&bus, &gen, 0, false, true, 0), &[0; MAX_MESSAGE + 1]), Err(EMSGSIZE));
    }

    #[test]
    fn a_late_consumer_starts_at_the_oldest_message_kept_and_the_ring_is_readable() {
        let (bus, gen) = bus();
        let mut p = ChannelEnd::open(&bus, &gen, 0, false, true, 0);
        for i in 0..SLOTS + 4 {
            publish(&mut p, alloc::format!("m{i}").as_bytes()).unwrap();
        }
        let late = ChannelEnd::open(&bus, &gen, 0, true, false, 0);
        assert_eq!(take(&late).unwrap(), b"m4");
        let (addr, ring) = late.ring();
        assert_eq!(addr, None);
        assert_eq!(&ring[..8], &MAGIC);
        assert_eq!(u64::from_le_bytes(ring[Header::COUNT..Header::COUNT + 8].try_into().unwrap()), SLOTS as u64 + 4);
        assert_eq!(&ring[Header::NAME..Header::NAME + 14], b"hello_protocol");
        let last = Channel::slot_at(SLOTS as u64 + 3);
        assert_eq!(&ring[last + 16..last + 19], b"m19");
    }
}
