//! Sockets between the processes of an app, with no network device: `AF_UNIX` (stream and
//! datagram, paths and the abstract namespace) and `AF_INET`/`AF_INET6` on loopback (TCP as
//! a byte stream, UDP as datagrams). Data moves through queues the shim holds
//! ([`Net`]), with back-pressure: a full queue or an empty one answers [`EBLOCK`], which
//! parks the thread until any I/O object changes (as for pipes), or `EAGAIN` for a
//! non-blocking socket.
//!
//! Addresses: every app has one IPv4 address on its network (its *host*, see
//! [`crate::Shim::join_network`]; 127.0.0.1 for an app alone). 127/8, `0.0.0.0`, `::1`,
//! `::` and the host's own address are this host: a listener bound to any of them is
//! reached through all of them (one listener per host, port and protocol). Another IPv4
//! address (or a v4-mapped IPv6 one) is another app on the same network, when the [`Net`]
//! is shared. Other IPv6 addresses are unreachable (`ENETUNREACH`). AF_UNIX names belong
//! to their host (each app has its own filesystem).

use crate::errno::*;
use crate::fd::{Cx, FileObject};
use crate::pipe::{bump, IoGen, POLLERR, POLLHUP, POLLIN, POLLOUT};
use crate::stat::Stat;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const SOCK_STREAM: u32 = 1;
pub const SOCK_DGRAM: u32 = 2;
/// Bytes a stream direction holds before a writer waits.
pub const STREAM_CAPACITY: usize = 256 * 1024;
/// Bytes of datagrams a socket holds before further ones are dropped (UDP) or the sender
/// waits (AF_UNIX).
pub const DGRAM_CAPACITY: usize = 208 * 1024;
/// Ephemeral ports, as Linux's default `ip_local_port_range`.
const EPHEMERAL: (u16, u16) = (32768, 60999);
const S_IFSOCK: u32 = 0o140000;

/// A socket address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Addr {
    /// IPv4 (as the 4 bytes) or IPv6, and the port.
    Inet { v6: bool, ip: [u8; 16], port: u16 },
    /// A path, or an abstract name (starting with NUL).
    Unix(Vec<u8>),
    /// An unbound AF_UNIX socket.
    Unnamed,
}

impl Addr {
    /// Parses a `struct sockaddr` of `len` bytes.
    pub fn parse(b: &[u8]) -> SysResult<Addr> {
        let family = u16::from_le_bytes([*b.first().ok_or(EINVAL)?, *b.get(1).ok_or(EINVAL)?]);
        match family {
            AF_INET if b.len() >= 8 => {
                let mut ip = [0u8; 16];
                ip[..4].copy_from_slice(&b[4..8]);
                Ok(Addr::Inet { v6: false, ip, port: u16::from_be_bytes([b[2], b[3]]) })
            }
            AF_INET6 if b.len() >= 24 => {
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&b[8..24]);
                Ok(Addr::Inet { v6: true, ip, port: u16::from_be_bytes([b[2], b[3]]) })
            }
            AF_UNIX => {
                let path = &b[2..b.len().min(110)];
                if path.is_empty() {
                    return Ok(Addr::Unnamed);
                }
                if path[0] == 0 {
                    return Ok(Addr::Unix(path.to_vec()));
                }
                let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
                Ok(Addr::Unix(path[..end].to_vec()))
            }
            AF_INET | AF_INET6 => Err(EINVAL),
            _ => Err(EAFNOSUPPORT),
        }
    }

    /// The `struct sockaddr` bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Addr::Inet { v6: false, ip, port } => {
                let mut b = alloc::vec![0u8; 16];
                b[..2].copy_from_slice(&AF_INET.to_le_bytes());
                b[2..4].copy_from_slice(&port.to_be_bytes());
                b[4..8].copy_from_slice(&ip[..4]);
                b
            }
            Addr::Inet { v6: true, ip, port } => {
                let mut b = alloc::vec![0u8; 28];
                b[..2].copy_from_slice(&AF_INET6.to_le_bytes());
                b[2..4].copy_from_slice(&port.to_be_bytes());
                b[8..24].copy_from_slice(ip);
                b
            }
            Addr::Unix(p) => {
                let mut b = AF_UNIX.to_le_bytes().to_vec();
                b.extend_from_slice(p);
                if p.first() != Some(&0) {
                    b.push(0);
                }
                b
            }
            Addr::Unnamed => AF_UNIX.to_le_bytes().to_vec(),
        }
    }

    /// The host an address names, seen from `me`: `None` when unreachable.
    fn host(&self, me: [u8; 4]) -> Option<[u8; 4]> {
        match self {
            Addr::Inet { .. } => match self.v4() {
                Some(b) if b[0] == 127 || b == [0; 4] => Some(me),
                Some(b) => Some(b),
                None => self.is_v6_local().then_some(me),
            },
            _ => Some(me),
        }
    }

    /// The IPv4 address an inet address holds: an IPv4 one, or an IPv4-mapped IPv6 one.
    fn v4(&self) -> Option<[u8; 4]> {
        match self {
            Addr::Inet { v6: false, ip, .. } => Some([ip[0], ip[1], ip[2], ip[3]]),
            Addr::Inet { v6: true, ip, .. } if ip[..12] == mapped([0; 4])[..12] => Some([ip[12], ip[13], ip[14], ip[15]]),
            _ => None,
        }
    }

    /// `::` or `::1`.
    fn is_v6_local(&self) -> bool {
        matches!(self, Addr::Inet { v6: true, ip, .. } if ip[..15] == [0; 15] && ip[15] <= 1)
    }

    fn port(&self) -> Option<u16> {
        match self {
            Addr::Inet { port, .. } => Some(*port),
            _ => None,
        }
    }

    fn with_port(&self, p: u16) -> Addr {
        match self {
            Addr::Inet { v6, ip, .. } => Addr::Inet { v6: *v6, ip: *ip, port: p },
            other => other.clone(),
        }
    }

    /// The loopback address of this family, with `port`.
    fn loopback(v6: bool, port: u16) -> Addr {
        let mut ip = [0u8; 16];
        if v6 {
            ip[15] = 1;
        } else {
            ip[..4].copy_from_slice(&[127, 0, 0, 1]);
        }
        Addr::Inet { v6, ip, port }
    }
}

/// Where listeners and datagram sockets are found: one table per app (its processes share
/// it).
#[derive(Default)]
pub struct Net {
    listeners: BTreeMap<Key, Rc<RefCell<Listener>>>,
    dgrams: BTreeMap<Key, Rc<RefCell<Inbox>>>,
    /// Bound but not yet listening stream sockets (so a second bind gets EADDRINUSE).
    reserved: BTreeMap<Key, usize>,
    next_port: u16,
    /// The networks each host is on (a bit per network); hosts reach each other only
    /// through a network they share.
    members: BTreeMap<[u8; 4], u64>,
}

/// A bound name: (stream?, host, inet port or unix name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Port(bool, [u8; 4], u16),
    /// A port of an IPv6-only socket (IPV6_V6ONLY): apart from the IPv4 ones, so that
    /// [::]:p and 0.0.0.0:p can both be bound, as mosquitto does.
    Port6(bool, [u8; 4], u16),
    Unix(bool, [u8; 4], Vec<u8>),
}

/// App `index`'s address on its image's networks: 10.89.0.(index + 2), as a container
/// network gives its services theirs.
pub fn app_address(index: usize) -> [u8; 4] {
    [10, 89, 0, (index + 2).min(254) as u8]
}

/// Where one app of an image stands on the image's networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub address: [u8; 4],
    /// A bit per network the app is on.
    pub mask: u64,
    /// Every app it shares a network with (itself included): its `/etc/hosts`.
    pub hosts: Vec<(String, [u8; 4])>,
}

/// The networks of an image's apps, each given by its name and the networks it names
/// (none: the image's `default` one), in the apps' order: what both runners hand to
/// [`Net::set_member`] and [`crate::Shim::join_network`]. Past 64 networks, the rest share
/// the last bit.
pub fn plan(apps: &[(&str, Vec<&str>)]) -> Vec<Membership> {
    let mut names: Vec<&str> = Vec::new();
    let mut masks = Vec::new();
    for (_, nets) in apps {
        let mut mask = 0u64;
        let listed: &[&str] = if nets.is_empty() { &["default"] } else { nets };
        for &n in listed {
            let i = names.iter().position(|x| *x == n).unwrap_or_else(|| {
                names.push(n);
                names.len() - 1
            });
            mask |= 1u64 << i.min(63);
        }
        masks.push(mask);
    }
    (0..apps.len())
        .map(|i| Membership {
            address: app_address(i),
            mask: masks[i],
            hosts: (0..apps.len()).filter(|&j| masks[j] & masks[i] != 0).map(|j| (String::from(apps[j].0), app_address(j))).collect(),
        })
        .collect()
}

/// The key of `a` as seen from host `me`.
fn key(stream: bool, me: [u8; 4], a: &Addr) -> Option<Key> {
    match a {
        Addr::Inet { port, .. } => Some(Key::Port(stream, a.host(me)?, *port)),
        Addr::Unix(p) => Some(Key::Unix(stream, me, p.clone())),
        Addr::Unnamed => None,
    }
}

impl Net {
    /// What is bound at `k` for a peer addressing `to`: an IPv6 address that is not
    /// v4-mapped reaches an IPv6-only socket first, then a dual-stack one.
    fn find<T>(&self, k: &Key, to: &Addr, get: impl Fn(&Net, &Key) -> Option<T>) -> Option<T> {
        if let (Key::Port(st, h, p), Addr::Inet { v6: true, .. }, None) = (k, to, to.v4()) {
            if let Some(x) = get(self, &Key::Port6(*st, *h, *p)) {
                return Some(x);
            }
        }
        get(self, k)
    }

    /// Puts `host` on the networks of `mask`.
    pub fn set_member(&mut self, host: [u8; 4], mask: u64) {
        self.members.insert(host, mask);
    }

    /// Whether `from` may reach `to`: itself, or a host on one of its networks.
    fn reaches(&self, from: [u8; 4], to: [u8; 4]) -> bool {
        from == to || self.members.get(&from).zip(self.members.get(&to)).is_some_and(|(a, b)| a & b != 0)
    }

    /// Forgets the socket path `path` (of either kind): its file is gone, so the name is
    /// free again; sockets bound to it keep working but cannot be reached by it.
    pub fn forget_path(&mut self, host: [u8; 4], path: &[u8]) {
        for stream in [false, true] {
            let k = Key::Unix(stream, host, path.to_vec());
            self.listeners.remove(&k);
            self.dgrams.remove(&k);
            self.reserved.remove(&k);
        }
    }

    fn taken(&self, k: &Key) -> bool {
        self.listeners.contains_key(k) || self.dgrams.contains_key(k) || self.reserved.contains_key(k)
    }

    /// A free ephemeral port of host `me` for `stream` sockets.
    fn ephemeral(&mut self, stream: bool, me: [u8; 4]) -> SysResult<u16> {
        let span = EPHEMERAL.1 - EPHEMERAL.0 + 1;
        for _ in 0..span {
            let p = EPHEMERAL.0 + self.next_port % span;
            self.next_port = self.next_port.wrapping_add(1);
            if !self.taken(&Key::Port(stream, me, p)) {
                return Ok(p);
            }
        }
        Err(EADDRINUSE)
    }
}

/// One direction of a stream connection.
#[derive(Default)]
struct Pipe {
    data: VecDeque<u8>,
    /// The writer shut down or closed: the reader sees end of file once it is drained.
    writer_gone: bool,
    /// The reader closed: writes get EPIPE.
    reader_gone: bool,
    /// The reader (TCP) closed with data unread, so a real stack would send a reset: the
    /// writer's next send, or its next recv with nothing queued, fails once with
    /// ECONNRESET (then EPIPE and end of file, as on Linux).
    reset: bool,
}

/// A connection waiting in a listener's backlog.
struct Pending {
    local: Addr,
    peer: Addr,
    rx: Rc<RefCell<Pipe>>,
    tx: Rc<RefCell<Pipe>>,
}

struct Listener {
    backlog: VecDeque<Pending>,
    max: usize,
}

#[derive(Default)]
struct Inbox {
    msgs: VecDeque<(Addr, Vec<u8>)>,
    bytes: usize,
    closed: bool,
}

enum State {
    Fresh,
    Bound(Addr),
    Listening { addr: Addr, l: Rc<RefCell<Listener>> },
    Connected { local: Addr, peer: Addr, rx: Rc<RefCell<Pipe>>, tx: Rc<RefCell<Pipe>> },
    /// A datagram socket: its own name and inbox once bound, its default peer.
    Dgram { local: Option<Addr>, inbox: Option<Rc<RefCell<Inbox>>>, peer: Option<Addr> },
}

/// A socket: an fd object.
pub struct Socket {
    /// The app's address on its network.
    host: [u8; 4],
    pub domain: u16,
    pub ty: u32,
    state: State,
    net: Rc<RefCell<Net>>,
    gen: IoGen,
    ino: u64,
    /// shutdown(SHUT_RD): reads see end of file.
    shut_rd: bool,
    /// IPV6_V6ONLY: an IPv6 socket that takes no IPv4 (v4-mapped) peers.
    pub v6only: bool,
}

/// What `recv` gives: bytes and, for datagrams, the sender.
pub struct Received {
    pub len: usize,
    pub from: Option<Addr>,
    /// A datagram longer than the buffer (MSG_TRUNC).
    pub truncated: usize,
}

impl Socket {
    pub fn new(net: &Rc<RefCell<Net>>, gen: &IoGen, host: [u8; 4], domain: u16, ty: u32, ino: u64) -> Socket {
        let state = if ty == SOCK_DGRAM { State::Dgram { local: None, inbox: None, peer: None } } else { State::Fresh };
        Socket { host, domain, ty, state, net: net.clone(), gen: gen.clone(), ino, shut_rd: false, v6only: false }
    }

    /// Two connected sockets (socketpair).
    pub fn pair(net: &Rc<RefCell<Net>>, gen: &IoGen, host: [u8; 4], ty: u32, ino: u64) -> (Socket, Socket) {
        let mut a = Socket::new(net, gen, host, AF_UNIX, ty, ino);
        let mut b = Socket::new(net, gen, host, AF_UNIX, ty, ino + 1);
        if ty == SOCK_STREAM {
            let (x, y) = (Rc::new(RefCell::new(Pipe::default())), Rc::new(RefCell::new(Pipe::default())));
            a.state = State::Connected { local: Addr::Unnamed, peer: Addr::Unnamed, rx: x.clone(), tx: y.clone() };
            b.state = State::Connected { local: Addr::Unnamed, peer: Addr::Unnamed, rx: y, tx: x };
        } else {
            // Each gets an inbox under an abstract name only the pair knows.
            let (ia, ib) = (Rc::new(RefCell::new(Inbox::default())), Rc::new(RefCell::new(Inbox::default())));
            let (na, nb) = (pair_name(ino), pair_name(ino + 1));
            let mut n = net.borrow_mut();
            n.dgrams.insert(Key::Unix(false, host, na.clone()), ia.clone());
            n.dgrams.insert(Key::Unix(false, host, nb.clone()), ib.clone());
            a.state = State::Dgram { local: Some(Addr::Unix(na.clone())), inbox: Some(ia), peer: Some(Addr::Unix(nb.clone())) };
            b.state = State::Dgram { local: Some(Addr::Unix(nb)), inbox: Some(ib), peer: Some(Addr::Unix(na)) };
        }
        (a, b)
    }

    fn stream(&self) -> bool {
        self.ty == SOCK_STREAM
    }

    fn check_family(&self, a: &Addr) -> SysResult<()> {
        let ok = match a {
            Addr::Inet { .. } => self.domain == AF_INET || self.domain == AF_INET6,
            Addr::Unix(_) | Addr::Unnamed => self.domain == AF_UNIX,
        };
        if ok {
            Ok(())
        } else {
            Err(EAFNOSUPPORT)
        }
    }

    pub fn bind(&mut self, addr: Addr) -> SysResult<()> {
        self.check_family(&addr)?;
        if addr.host(self.host) != Some(self.host) {
            return Err(EADDRNOTAVAIL);
        }
        let stream = self.stream();
        let mut n = self.net.borrow_mut();
        let addr = match addr.port() {
            Some(0) => addr.with_port(n.ephemeral(stream, self.host)?),
            _ => addr,
        };
        let k = self.key_of(stream, &addr).ok_or(EINVAL)?;
        if n.taken(&k) {
            return Err(EADDRINUSE);
        }
        match &mut self.state {
            State::Fresh => {
                *n.reserved.entry(k).or_default() += 1;
                self.state = State::Bound(addr);
            }
            State::Dgram { local: local @ None, inbox, .. } => {
                let b = Rc::new(RefCell::new(Inbox::default()));
                n.dgrams.insert(k, b.clone());
                *local = Some(addr);
                *inbox = Some(b);
            }
            _ => return Err(EINVAL),
        }
        Ok(())
    }

    /// The key this socket binds `a` under.
    fn key_of(&self, stream: bool, a: &Addr) -> Option<Key> {
        match (key(stream, self.host, a)?, a) {
            (Key::Port(st, h, p), Addr::Inet { v6: true, .. }) if self.v6only => Some(Key::Port6(st, h, p)),
            (k, _) => Some(k),
        }
    }

    /// Binds to an ephemeral name when not bound yet (connect, listen, sendto).
    fn autobind(&mut self) -> SysResult<()> {
        let unbound = matches!(self.state, State::Fresh | State::Dgram { local: None, .. });
        if !unbound {
            return Ok(());
        }
        let a = match self.domain {
            AF_UNIX if self.stream() => return Ok(()),
            AF_UNIX => {
                let mut name = alloc::vec![0u8];
                name.extend_from_slice(alloc::format!("{:05x}", self.ino & 0xf_ffff).as_bytes());
                Addr::Unix(name)
            }
            d => Addr::loopback(d == AF_INET6, 0),
        };
        self.bind(a)
    }

    pub fn listen(&mut self, backlog: i32) -> SysResult<()> {
        if !self.stream() {
            return Err(EOPNOTSUPP);
        }
        let max = backlog.clamp(1, 4096) as usize;
        if let State::Listening { l, .. } = &self.state {
            l.borrow_mut().max = max;
            return Ok(());
        }
        if matches!(self.state, State::Fresh) {
            if self.domain == AF_UNIX {
                return Err(EINVAL);
            }
            self.autobind()?;
        }
        let State::Bound(addr) = &self.state else { return Err(EINVAL) };
        let addr = addr.clone();
        let k = self.key_of(true, &addr).ok_or(EINVAL)?;
        let l = Rc::new(RefCell::new(Listener { backlog: VecDeque::new(), max }));
        {
            let mut n = self.net.borrow_mut();
            unreserve(&mut n, &k);
            n.listeners.insert(k, l.clone());
        }
        self.state = State::Listening { addr, l };
        bump(&self.gen);
        Ok(())
    }

    /// The next connection of a listening socket, as a new socket.
    pub fn accept(&mut self, ino: u64) -> SysResult<(Socket, Addr)> {
        let State::Listening { l, .. } = &self.state else { return Err(EINVAL) };
        let p = l.borrow_mut().backlog.pop_front().ok_or(EBLOCK)?;
        bump(&self.gen);
        let mut s = Socket::new(&self.net, &self.gen, self.host, self.domain, SOCK_STREAM, ino);
        let peer = p.peer.clone();
        s.state = State::Connected { local: p.local, peer: p.peer, rx: p.rx, tx: p.tx };
        Ok((s, peer))
    }

    pub fn connect(&mut self, to: Addr) -> SysResult<()> {
        self.check_family(&to)?;
        let Some(dest) = to.host(self.host).filter(|&d| self.net.borrow().reaches(self.host, d)) else { return Err(ENETUNREACH) };
        if !self.stream() {
            self.autobind()?;
            let domain = self.domain;
            let host = self.host;
            if let State::Dgram { peer, local, .. } = &mut self.state {
                // An IPv6 socket connected to an IPv4 address has IPv4-mapped names (glibc's
                // getaddrinfo asserts it when it sorts its answers).
                if let (Some(l @ Addr::Inet { v6: true, .. }), Some(to_ip)) = (local.as_mut(), to.v4()) {
                    if l.is_v6_local() {
                        let from = if to_ip[0] == 127 { [127, 0, 0, 1] } else { host };
                        if let Addr::Inet { ip, .. } = l {
                            *ip = mapped(from);
                        }
                    }
                }
                *peer = Some(in_domain(&to, domain));
            }
            return Ok(());
        }
        match self.state {
            State::Connected { .. } => return Err(EISCONN),
            State::Listening { .. } => return Err(EINVAL),
            _ => {}
        }
        self.autobind()?;
        let k = key(true, self.host, &to).ok_or(EINVAL)?;
        let l = self.net.borrow().find(&k, &to, |n, k| n.listeners.get(k).cloned()).ok_or(ECONNREFUSED)?;
        let mut lb = l.borrow_mut();
        if lb.backlog.len() >= lb.max {
            return Err(EBLOCK);
        }
        let local = match &self.state {
            // Another app sees this host's address, not loopback.
            State::Bound(a) if dest != self.host => own_address(a, self.host),
            State::Bound(a) => a.clone(),
            _ => Addr::Unnamed,
        };
        if let State::Bound(a) = &self.state {
            if let Some(k) = self.key_of(true, a) {
                unreserve(&mut self.net.borrow_mut(), &k);
            }
        }
        // The server side sees the address the client asked for (with its port).
        let server_local = match (&to, self.domain) {
            (Addr::Inet { v6, ip, port }, _) if ip.iter().all(|&b| b == 0) => Addr::loopback(*v6, *port),
            _ => to.clone(),
        };
        let (up, down) = (Rc::new(RefCell::new(Pipe::default())), Rc::new(RefCell::new(Pipe::default())));
        lb.backlog.push_back(Pending { local: server_local, peer: local.clone(), rx: up.clone(), tx: down.clone() });
        drop(lb);
        self.state = State::Connected { local, peer: in_domain(&to, self.domain), rx: down, tx: up };
        bump(&self.gen);
        Ok(())
    }

    pub fn local_addr(&self) -> Addr {
        match &self.state {
            State::Bound(a) | State::Listening { addr: a, .. } | State::Connected { local: a, .. } => a.clone(),
            State::Dgram { local: Some(a), .. } => a.clone(),
            _ if self.domain == AF_UNIX => Addr::Unnamed,
            _ => Addr::Inet { v6: self.domain == AF_INET6, ip: [0; 16], port: 0 },
        }
    }

    pub fn peer_addr(&self) -> SysResult<Addr> {
        match &self.state {
            State::Connected { peer, .. } => Ok(peer.clone()),
            State::Dgram { peer: Some(p), .. } => Ok(p.clone()),
            _ => Err(ENOTCONN),
        }
    }

    /// Sends `buf` (to `to` for an unconnected datagram socket).
    pub fn send(&mut self, buf: &[u8], to: Option<Addr>) -> SysResult<usize> {
        if self.stream() {
            let State::Connected { tx, .. } = &self.state else { return Err(ENOTCONN) };
            let mut p = tx.borrow_mut();
            if core::mem::take(&mut p.reset) {
                return Err(ECONNRESET);
            }
            if p.reader_gone || p.writer_gone {
                return Err(EPIPE);
            }
            if buf.is_empty() {
                return Ok(0);
            }
            let room = STREAM_CAPACITY - p.data.len();
            if room == 0 {
                return Err(EBLOCK);
            }
            let n = buf.len().min(room);
            p.data.extend(&buf[..n]);
            bump(&self.gen);
            return Ok(n);
        }
        self.autobind()?;
        let State::Dgram { local, peer, .. } = &self.state else { return Err(EINVAL) };
        let dest = match (to, peer) {
            (Some(a), _) => a,
            (None, Some(p)) => p.clone(),
            (None, None) => return Err(EDESTADDRREQ),
        };
        self.check_family(&dest)?;
        let Some(to_host) = dest.host(self.host).filter(|&d| self.net.borrow().reaches(self.host, d)) else { return Err(ENETUNREACH) };
        if buf.len() > 65507 {
            return Err(EMSGSIZE);
        }
        let from = match local {
            Some(a) if to_host != self.host => own_address(a, self.host),
            Some(a) => a.clone(),
            None => Addr::Unnamed,
        };
        let Some(inbox) = key(false, self.host, &dest).and_then(|k| self.net.borrow().find(&k, &dest, |n, k| n.dgrams.get(k).cloned())) else {
            // Nobody bound there: UDP drops it, AF_UNIX refuses.
            return if self.domain == AF_UNIX { Err(ECONNREFUSED) } else { Ok(buf.len()) };
        };
        let mut ib = inbox.borrow_mut();
        if ib.bytes + buf.len() > DGRAM_CAPACITY {
            return if self.domain == AF_UNIX { Err(EBLOCK) } else { Ok(buf.len()) };
        }
        ib.bytes += buf.len();
        ib.msgs.push_back((from, buf.to_vec()));
        bump(&self.gen);
        Ok(buf.len())
    }

    /// Receives into `buf`; `peek` leaves the data queued.
    pub fn recv(&mut self, buf: &mut [u8], peek: bool) -> SysResult<Received> {
        match &self.state {
            State::Connected { rx, tx, peer, .. } => {
                let mut p = rx.borrow_mut();
                if p.data.is_empty() && !peek && core::mem::take(&mut tx.borrow_mut().reset) {
                    return Err(ECONNRESET);
                }
                if p.data.is_empty() {
                    return if p.writer_gone || self.shut_rd || buf.is_empty() {
                        Ok(Received { len: 0, from: Some(peer.clone()), truncated: 0 })
                    } else {
                        Err(EBLOCK)
                    };
                }
                let n = buf.len().min(p.data.len());
                for (d, s) in buf[..n].iter_mut().zip(p.data.iter()) {
                    *d = *s;
                }
                if !peek {
                    p.data.drain(..n);
                    bump(&self.gen);
                }
                Ok(Received { len: n, from: Some(peer.clone()), truncated: 0 })
            }
            State::Dgram { inbox: Some(ib), .. } => {
                let mut ib = ib.borrow_mut();
                let Some((from, msg)) = ib.msgs.front() else {
                    return if self.shut_rd { Ok(Received { len: 0, from: None, truncated: 0 }) } else { Err(EBLOCK) };
                };
                let n = buf.len().min(msg.len());
                buf[..n].copy_from_slice(&msg[..n]);
                let r = Received { len: n, from: Some(from.clone()), truncated: msg.len() };
                if !peek {
                    let (_, m) = ib.msgs.pop_front().expect("front exists");
                    ib.bytes -= m.len();
                    bump(&self.gen);
                }
                Ok(r)
            }
            // An unbound datagram socket never receives anything.
            State::Dgram { .. } => Err(EBLOCK),
            _ => Err(ENOTCONN),
        }
    }

    /// shutdown(2): 0 reads, 1 writes, 2 both.
    pub fn shutdown(&mut self, how: u64) -> SysResult<()> {
        if how > 2 {
            return Err(EINVAL);
        }
        match &self.state {
            State::Connected { tx, .. } => {
                if how != 0 {
                    tx.borrow_mut().writer_gone = true;
                }
            }
            State::Dgram { .. } => {}
            _ => return Err(ENOTCONN),
        }
        if how != 1 {
            self.shut_rd = true;
        }
        bump(&self.gen);
        Ok(())
    }

    /// poll(2) readiness.
    pub fn readiness(&self) -> u16 {
        match &self.state {
            State::Listening { l, .. } => {
                if l.borrow().backlog.is_empty() {
                    0
                } else {
                    POLLIN
                }
            }
            State::Connected { rx, tx, .. } => {
                let (r, t) = (rx.borrow(), tx.borrow());
                let mut m = 0;
                if !r.data.is_empty() || r.writer_gone || self.shut_rd {
                    m |= POLLIN;
                }
                if t.reader_gone {
                    m |= POLLOUT | POLLERR;
                } else if !t.writer_gone && STREAM_CAPACITY - t.data.len() > 0 {
                    m |= POLLOUT;
                }
                if r.writer_gone && (t.reader_gone || t.writer_gone) {
                    m |= POLLHUP;
                }
                m
            }
            State::Dgram { inbox, .. } => {
                let has = inbox.as_ref().is_some_and(|i| !i.borrow().msgs.is_empty());
                POLLOUT | if has || self.shut_rd { POLLIN } else { 0 }
            }
            // An unconnected stream socket: Linux reports POLLOUT|POLLHUP.
            _ => POLLOUT | POLLHUP,
        }
    }

    pub fn queued(&self) -> usize {
        match &self.state {
            State::Connected { rx, .. } => rx.borrow().data.len(),
            State::Dgram { inbox: Some(i), .. } => i.borrow().msgs.front().map_or(0, |m| m.1.len()),
            _ => 0,
        }
    }
}

/// `a` (an address of this host) as another host reaches it: the host's own address.
/// `a` as a socket of `domain` names it: an IPv4 address is IPv4-mapped for an IPv6
/// socket.
fn in_domain(a: &Addr, domain: u16) -> Addr {
    match a {
        Addr::Inet { v6: false, ip, port } if domain == AF_INET6 => Addr::Inet { v6: true, ip: mapped([ip[0], ip[1], ip[2], ip[3]]), port: *port },
        other => other.clone(),
    }
}

/// ::ffff:a.b.c.d
fn mapped(v4: [u8; 4]) -> [u8; 16] {
    let mut ip = [0u8; 16];
    ip[10..12].copy_from_slice(&[0xff, 0xff]);
    ip[12..16].copy_from_slice(&v4);
    ip
}

fn own_address(a: &Addr, host: [u8; 4]) -> Addr {
    match a {
        Addr::Inet { v6: true, port, .. } => Addr::Inet { v6: true, ip: mapped(host), port: *port },
        Addr::Inet { v6: false, port, .. } => {
            let mut ip = [0u8; 16];
            ip[..4].copy_from_slice(&host);
            Addr::Inet { v6: false, ip, port: *port }
        }
        other => other.clone(),
    }
}

fn unreserve(n: &mut Net, k: &Key) {
    if let Some(c) = n.reserved.get_mut(k) {
        *c -= 1;
        if *c == 0 {
            n.reserved.remove(k);
        }
    }
}

fn pair_name(ino: u64) -> Vec<u8> {
    let mut v = alloc::vec![0u8];
    v.extend_from_slice(alloc::format!("selkie-pair-{ino}").as_bytes());
    v
}

impl Drop for Socket {
    fn drop(&mut self) {
        let mut n = self.net.borrow_mut();
        match &self.state {
            State::Connected { rx, tx, .. } => {
                tx.borrow_mut().writer_gone = true;
                let mut r = rx.borrow_mut();
                r.reader_gone = true;
                r.reset = self.domain != AF_UNIX && !r.data.is_empty();
            }
            State::Listening { addr, l } => {
                if let Some(k) = self.key_of(true, addr) {
                    if n.listeners.get(&k).is_some_and(|x| Rc::ptr_eq(x, l)) {
                        n.listeners.remove(&k);
                    }
                }
                // Connections nobody accepted are reset.
                for p in l.borrow_mut().backlog.drain(..) {
                    p.tx.borrow_mut().writer_gone = true;
                    p.rx.borrow_mut().reader_gone = true;
                }
            }
            State::Bound(a) => {
                if let Some(k) = self.key_of(true, a) {
                    unreserve(&mut n, &k);
                }
            }
            State::Dgram { local: Some(a), inbox: Some(i), .. } => {
                if let Some(k) = self.key_of(false, a) {
                    if n.dgrams.get(&k).is_some_and(|x| Rc::ptr_eq(x, i)) {
                        n.dgrams.remove(&k);
                    }
                }
                i.borrow_mut().closed = true;
            }
            _ => {}
        }
        bump(&self.gen);
    }
}

impl<'a> FileObject<'a> for Socket {
    fn read(&mut self, _cx: &mut Cx<'_, 'a>, buf: &mut [u8]) -> SysResult<usize> {
        self.recv(buf, false).map(|r| r.len)
    }
    fn write(&mut self, _cx: &mut Cx<'_, 'a>, buf: &[u8], _append: bool) -> SysResult<usize> {
        self.send(buf, None)
    }
    fn stat(&self, _cx: &Cx<'_, 'a>) -> SysResult<Stat> {
        Ok(Stat::synthetic(S_IFSOCK | 0o777, self.ino, 0x08))
    }
    fn poll(&self, _cx: &Cx<'_, 'a>) -> u16 {
        self.readiness()
    }
    fn fionread(&self) -> Option<usize> {
        Some(self.queued())
    }
    fn as_socket(&mut self) -> Option<&mut Socket> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    fn v4(ip: [u8; 4], port: u16) -> Addr {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&ip);
        Addr::Inet { v6: false, ip: b, port }
    }

    #[test]
    fn plan_gives_addresses_masks_and_hosts_per_shared_network() {
        let apps = [("server", alloc::vec!["front"]), ("client", alloc::vec![]), ("both", alloc::vec!["front", "default"]), ("loner", alloc::vec!["side"])];
        let p = plan(&apps);
        assert_eq!(p[0].address, [10, 89, 0, 2]);
        assert_eq!(p[3].address, [10, 89, 0, 5]);
        fn names(m: &Membership) -> Vec<&str> {
            m.hosts.iter().map(|h| h.0.as_str()).collect()
        }
        assert_eq!(names(&p[0]), ["server", "both"]);
        assert_eq!(names(&p[1]), ["client", "both"]);
        assert_eq!(names(&p[2]), ["server", "client", "both"]);
        assert_eq!(names(&p[3]), ["loner"]);
        assert_eq!(p[0].mask & p[1].mask, 0);
    }

    #[test]
    fn hosts_reach_each_other_only_through_a_shared_network() {
        let net = Rc::new(RefCell::new(Net::default()));
        let gen: IoGen = Rc::new(Cell::new(0));
        let (a, b, c) = ([10, 89, 0, 2], [10, 89, 0, 3], [10, 89, 0, 4]);
        net.borrow_mut().set_member(a, 0b01);
        net.borrow_mut().set_member(b, 0b01);
        net.borrow_mut().set_member(c, 0b10);
        let mut server = Socket::new(&net, &gen, a, AF_INET, SOCK_STREAM, 1);
        server.bind(v4([0, 0, 0, 0], 5050)).unwrap();
        server.listen(4).unwrap();
        // Its own loopback is not another host's.
        let mut other_loopback = Socket::new(&net, &gen, b, AF_INET, SOCK_STREAM, 2);
        assert_eq!(other_loopback.connect(v4([127, 0, 0, 1], 5050)), Err(ECONNREFUSED));
        let mut peer = Socket::new(&net, &gen, b, AF_INET, SOCK_STREAM, 3);
        peer.connect(v4(a, 5050)).unwrap();
        let (accepted, from) = server.accept(4).unwrap();
        assert!(matches!(from, Addr::Inet { ip, .. } if ip[..4] == b), "the server sees the client's address: {from:?}");
        assert!(matches!(accepted.local_addr(), Addr::Inet { ip, port: 5050, .. } if ip[..4] == a));
        let mut outsider = Socket::new(&net, &gen, c, AF_INET, SOCK_STREAM, 5);
        assert_eq!(outsider.connect(v4(a, 5050)), Err(ENETUNREACH));
        let mut udp = Socket::new(&net, &gen, c, AF_INET, SOCK_DGRAM, 6);
        assert_eq!(udp.send(b"x", Some(v4(a, 53))), Err(ENETUNREACH));
        // Binding another host's address is refused.
        let mut s = Socket::new(&net, &gen, a, AF_INET, SOCK_STREAM, 7);
        assert_eq!(s.bind(v4(b, 1)), Err(EADDRNOTAVAIL));
    }
}
