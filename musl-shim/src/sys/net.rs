//! Socket syscalls over [`crate::net`]: socket, socketpair, bind, listen, accept4,
//! connect, getsockname, getpeername, send*/recv*, shutdown, getsockopt and setsockopt.

use super::Outcome;
use crate::errno::*;
use crate::fd::{new_entry, O_CLOEXEC, O_NONBLOCK, O_RDWR};
use crate::net::{Addr, Socket, AF_INET, AF_INET6, AF_UNIX, DGRAM_CAPACITY, SOCK_DGRAM, SOCK_STREAM, STREAM_CAPACITY};
use crate::platform::Platform;
use crate::Shim;
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2000000;
const MSG_PEEK: u64 = 0x2;
const MSG_TRUNC: u64 = 0x20;
const MSG_DONTWAIT: u64 = 0x40;
const MSG_WAITALL: u64 = 0x100;
const MSG_NOSIGNAL: u64 = 0x4000;
/// Most bytes one send or recv moves through our buffers (streams go on in later calls).
const IO_MAX: usize = 1 << 20;

fn new_ino(s: &mut Shim<'_>) -> u64 {
    0x3_0000 + s.tasks.alloc_pipe_ino() * 2
}

/// Runs `f` on the socket behind `fd` with its file's status flags.
fn with_sock<R>(s: &mut Shim<'_>, fd: u64, f: impl FnOnce(&mut Socket, u32) -> SysResult<R>) -> SysResult<R> {
    let file = s.fds.file(fd as i32 as i64)?;
    let mut of = file.borrow_mut();
    let flags = of.flags;
    let sock = of.obj.as_socket().ok_or(ENOTSOCK)?;
    f(sock, flags)
}

/// EBLOCK becomes EAGAIN for a non-blocking socket or MSG_DONTWAIT.
fn nonblocking<T>(r: SysResult<T>, flags: u32, msg: u64) -> SysResult<T> {
    match r {
        Err(EBLOCK) if flags & O_NONBLOCK != 0 || msg & MSG_DONTWAIT != 0 => Err(EAGAIN),
        r => r,
    }
}

fn read_addr<E: Platform>(env: &mut E, at: u64, len: u64) -> SysResult<Addr> {
    if len < 2 || len > 128 {
        return Err(EINVAL);
    }
    let mut b = vec![0u8; len as usize];
    env.read(at, &mut b)?;
    Addr::parse(&b)
}

/// Writes `a` to the `sockaddr` at `at` whose size is at `lenp` (truncated to it), and
/// its full length to `lenp`.
fn write_addr<E: Platform>(env: &mut E, a: &Addr, at: u64, lenp: u64) -> SysResult<()> {
    if at == 0 || lenp == 0 {
        return Ok(());
    }
    let room = env.read_u32(lenp)? as usize;
    let b = a.encode();
    env.write(at, &b[..b.len().min(room)])?;
    env.write(lenp, &(b.len() as u32).to_le_bytes())
}

pub fn socket(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    let domain = a[0] as u16;
    let ty = (a[1] & 0xf) as u32;
    if a[1] & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    if !matches!(domain, AF_UNIX | AF_INET | AF_INET6) || a[0] > u64::from(u16::MAX) {
        return Err(EAFNOSUPPORT);
    }
    if ty != SOCK_STREAM && ty != SOCK_DGRAM {
        return Err(ESOCKTNOSUPPORT);
    }
    let proto = a[2];
    let proto_ok = proto == 0 || (domain != AF_UNIX && ((ty == SOCK_STREAM && proto == 6) || (ty == SOCK_DGRAM && proto == 17)));
    if !proto_ok {
        return Err(EPROTONOSUPPORT);
    }
    let ino = new_ino(s);
    let sock = Socket::new(&s.net, &s.tasks.io_gen, s.host, domain, ty, ino);
    let flags = O_RDWR | status_of(a[1]);
    s.fds.install(new_entry(Box::new(sock), flags), 0).map(|fd| fd as u64)
}

fn status_of(type_flags: u64) -> u32 {
    (if type_flags & SOCK_NONBLOCK != 0 { O_NONBLOCK } else { 0 }) | (if type_flags & SOCK_CLOEXEC != 0 { O_CLOEXEC } else { 0 })
}

pub fn socketpair<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let ty = (a[1] & 0xf) as u32;
    if a[0] != u64::from(AF_UNIX) {
        return Err(if a[0] == u64::from(AF_INET) || a[0] == u64::from(AF_INET6) { EOPNOTSUPP } else { EAFNOSUPPORT });
    }
    if ty != SOCK_STREAM && ty != SOCK_DGRAM {
        return Err(ESOCKTNOSUPPORT);
    }
    let ino = new_ino(s);
    let (x, y) = Socket::pair(&s.net, &s.tasks.io_gen, s.host, ty, ino);
    let flags = O_RDWR | status_of(a[1]);
    let fa = s.fds.install(new_entry(Box::new(x), flags), 0)?;
    let fb = match s.fds.install(new_entry(Box::new(y), flags), 0) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = s.fds.close(i64::from(fa));
            return Err(e);
        }
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&fa.to_le_bytes());
    b[4..].copy_from_slice(&fb.to_le_bytes());
    if let Err(e) = env.write(a[3], &b) {
        let _ = s.fds.close(i64::from(fa));
        let _ = s.fds.close(i64::from(fb));
        return Err(e);
    }
    Ok(0)
}

/// bind: a socket path (not an abstract name) is also a file of type socket in the tree;
/// one that exists already gives EADDRINUSE, and a name whose file was removed is free.
pub fn bind<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let addr = read_addr(env, a[1], a[2])?;
    let file = match &addr {
        Addr::Unix(p) if p.first().is_some_and(|&c| c != 0) => {
            let start = if p[0] == b'/' { crate::vfs::ROOT } else { s.cwd };
            let (dir, name) = s.vfs.resolve_parent(start, p)?;
            if s.vfs.dir_entries(dir).is_some_and(|m| m.contains_key(name)) {
                return Err(EADDRINUSE);
            }
            s.net.borrow_mut().forget_path(s.host, p);
            Some((dir, name.to_vec()))
        }
        _ => None,
    };
    with_sock(s, a[0], |k, _| k.bind(addr))?;
    if let Some((dir, name)) = file {
        let perm = 0o777 & !s.proc_.umask;
        s.vfs.mknod(dir, &name, crate::vfs::S_IFSOCK, perm, (s.proc_.uid, s.proc_.gid))?;
    }
    Ok(0)
}

pub fn listen(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    with_sock(s, a[0], |k, _| k.listen(a[1] as i32)).map(|_| 0)
}

pub fn accept4<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6], flags: u64) -> SysResult<u64> {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let ino = new_ino(s);
    let (sock, peer) = with_sock(s, a[0], |k, f| nonblocking(k.accept(ino), f, 0))?;
    let fd = s.fds.install(new_entry(Box::new(sock), O_RDWR | status_of(flags)), 0)?;
    if let Err(e) = write_addr(env, &peer, a[1], a[2]) {
        let _ = s.fds.close(i64::from(fd));
        return Err(e);
    }
    Ok(fd as u64)
}

pub fn connect<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let addr = read_addr(env, a[1], a[2])?;
    with_sock(s, a[0], |k, f| {
        let r = nonblocking(k.connect(addr), f, 0);
        in_progress(k, f, r)
    })
    .map(|_| 0)
}

/// A non-blocking TCP connect gives `EINPROGRESS` as on Linux, where even a loopback
/// handshake finishes after the call: the socket (connected at once here) then polls
/// writable with `SO_ERROR` 0. AF_UNIX connects complete in the call, as on Linux.
fn in_progress(k: &Socket, flags: u32, r: SysResult<()>) -> SysResult<()> {
    match r {
        Ok(()) if flags & O_NONBLOCK != 0 && k.ty == SOCK_STREAM && k.domain != AF_UNIX => Err(EINPROGRESS),
        r => r,
    }
}

pub fn getsockname<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6], peer: bool) -> SysResult<u64> {
    let addr = with_sock(s, a[0], |k, _| if peer { k.peer_addr() } else { Ok(k.local_addr()) })?;
    if a[1] == 0 || a[2] == 0 {
        return Err(EFAULT);
    }
    write_addr(env, &addr, a[1], a[2]).map(|_| 0)
}

/// A send's EPIPE raises SIGPIPE unless MSG_NOSIGNAL.
fn sent(s: &mut Shim<'_>, r: SysResult<u64>, msg: u64) -> Outcome {
    match r {
        Err(EPIPE) if msg & MSG_NOSIGNAL == 0 => match super::signal::kill_self(s, super::signal::SIGPIPE) {
            Outcome::Killed(sig) => Outcome::Killed(sig),
            _ => Outcome::Ret(Err(EPIPE)),
        },
        r => Outcome::Ret(r),
    }
}

fn send_bytes(s: &mut Shim<'_>, fd: u64, data: &[u8], to: Option<Addr>, msg: u64) -> SysResult<u64> {
    with_sock(s, fd, |k, f| nonblocking(k.send(data, to), f, msg)).map(|n| n as u64)
}

pub fn sendto<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let len = (a[2] as usize).min(IO_MAX);
        let mut data = vec![0u8; len];
        env.read(a[1], &mut data)?;
        let to = if a[4] != 0 { Some(read_addr(env, a[4], a[5])?) } else { None };
        send_bytes(s, a[0], &data, to, a[3])
    })();
    sent(s, r, a[3])
}

/// (base, len) of each iovec of the msghdr at `m`.
fn iovecs<E: Platform>(env: &mut E, m: u64) -> SysResult<Vec<(u64, usize)>> {
    let (iov, n) = (env.read_u64(m.wrapping_add(16))?, env.read_u64(m.wrapping_add(24))?);
    if n > 1024 {
        return Err(EMSGSIZE);
    }
    let mut v = Vec::new();
    for i in 0..n {
        let base = env.read_u64(iov.wrapping_add(16 * i))?;
        let len = env.read_u64(iov.wrapping_add(16 * i + 8))?;
        v.push((base, len.min(IO_MAX as u64) as usize));
    }
    Ok(v)
}

pub fn sendmsg<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let m = a[1];
        let (name, namelen) = (env.read_u64(m)?, env.read_u32(m.wrapping_add(8))?);
        let iov = iovecs(env, m)?;
        let mut data = Vec::new();
        for (base, len) in iov {
            let take = len.min(IO_MAX - data.len());
            let at = data.len();
            data.resize(at + take, 0);
            env.read(base, &mut data[at..])?;
        }
        let to = if name != 0 && namelen != 0 { Some(read_addr(env, name, u64::from(namelen))?) } else { None };
        send_bytes(s, a[0], &data, to, a[2])
    })();
    sent(s, r, a[2])
}

fn recv_bytes(s: &mut Shim<'_>, fd: u64, want: usize, msg: u64) -> SysResult<(Vec<u8>, Option<Addr>, usize)> {
    let mut buf = vec![0u8; want.min(IO_MAX)];
    let r = with_sock(s, fd, |k, f| nonblocking(k.recv(&mut buf, msg & MSG_PEEK != 0), f, msg))?;
    buf.truncate(r.len);
    Ok((buf, r.from, r.truncated))
}

pub fn recvfrom<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let (data, from, full) = recv_bytes(s, a[0], a[2] as usize, a[3])?;
    env.write(a[1], &data)?;
    if let Some(f) = from {
        write_addr(env, &f, a[4], a[5])?;
    }
    Ok(if a[3] & MSG_TRUNC != 0 { full.max(data.len()) } else { data.len() } as u64)
}

pub fn recvmsg<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let m = a[1];
    let iov = iovecs(env, m)?;
    let want: usize = iov.iter().map(|v| v.1).sum();
    let (data, from, full) = recv_bytes(s, a[0], want, a[2] & !MSG_WAITALL)?;
    let mut done = 0;
    for (base, len) in iov {
        let n = len.min(data.len() - done);
        env.write(base, &data[done..done + n])?;
        done += n;
    }
    let name = env.read_u64(m)?;
    match from {
        Some(f) if name != 0 => write_addr(env, &f, name, m + 8)?,
        _ => env.write(m.wrapping_add(8), &0u32.to_le_bytes())?,
    }
    // No ancillary data (SCM_RIGHTS and credentials are not passed).
    env.write(m.wrapping_add(40), &0u64.to_le_bytes())?;
    let flags: u32 = if full > data.len() { MSG_TRUNC as u32 } else { 0 };
    env.write(m.wrapping_add(48), &flags.to_le_bytes())?;
    Ok(data.len() as u64)
}

pub fn shutdown(s: &mut Shim<'_>, a: [u64; 6]) -> SysResult<u64> {
    with_sock(s, a[0], |k, _| k.shutdown(a[1])).map(|_| 0)
}

const SOL_SOCKET: u64 = 1;
const IPPROTO_IP: u64 = 0;
const IPPROTO_TCP: u64 = 6;
const IPPROTO_IPV6: u64 = 41;
const IPV6_V6ONLY: u64 = 26;

/// setsockopt: IPV6_V6ONLY keeps an IPv6 socket's port apart from IPv4's; the options
/// that only tune a real network (buffers, keepalive, Nagle, reuse, timeouts) are taken
/// and have no effect on these queues.
pub fn setsockopt<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    if a[1] == IPPROTO_IPV6 && a[2] == IPV6_V6ONLY {
        if a[4] < 4 {
            return Err(EINVAL);
        }
        let on = env.read_u32(a[3])? != 0;
        return with_sock(s, a[0], |k, _| {
            if k.domain != AF_INET6 {
                return Err(ENOPROTOOPT);
            }
            k.v6only = on;
            Ok(0)
        });
    }
    with_sock(s, a[0], |_, _| Ok(()))?;
    match a[1] {
        SOL_SOCKET | IPPROTO_TCP | IPPROTO_IP | IPPROTO_IPV6 => Ok(0),
        _ => Err(ENOPROTOOPT),
    }
}

pub fn getsockopt<E: Platform>(s: &mut Shim<'_>, env: &mut E, a: [u64; 6]) -> SysResult<u64> {
    let (domain, ty, listening, v6only) = with_sock(s, a[0], |k, _| Ok((k.domain, k.ty, k.readiness() == 0 && k.peer_addr().is_err(), k.v6only)))?;
    let v: u32 = match (a[1], a[2]) {
        (SOL_SOCKET, 3) => ty,                                        // SO_TYPE
        (SOL_SOCKET, 4) => 0,                                         // SO_ERROR
        (SOL_SOCKET, 39) => u32::from(domain),                        // SO_DOMAIN
        (SOL_SOCKET, 38) => if domain == AF_UNIX { 0 } else if ty == SOCK_STREAM { 6 } else { 17 }, // SO_PROTOCOL
        (SOL_SOCKET, 30) => u32::from(listening),                    // SO_ACCEPTCONN (approximate)
        (SOL_SOCKET, 7) | (SOL_SOCKET, 8) => (if ty == SOCK_STREAM { STREAM_CAPACITY } else { DGRAM_CAPACITY }) as u32,
        (IPPROTO_IPV6, IPV6_V6ONLY) => u32::from(v6only),
        (SOL_SOCKET, _) | (IPPROTO_TCP, _) | (IPPROTO_IP, _) | (IPPROTO_IPV6, _) => 0,
        _ => return Err(ENOPROTOOPT),
    };
    let room = env.read_u32(a[4])? as usize;
    let b = v.to_le_bytes();
    env.write(a[3], &b[..room.min(4)])?;
    env.write(a[4], &4u32.to_le_bytes())?;
    Ok(0)
}
