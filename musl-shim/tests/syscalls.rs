//! The syscalls against a fake guest memory and platform, over a small cpio rootfs.

use musl_shim::errno::*;
use musl_shim::mm::MemLayout;
use musl_shim::sys::nr::*;
use musl_shim::testing::{sample_rootfs, FakePlatform};
use musl_shim::{Action, Config, ExecImage, GuestMemory, Shim};

#[path = "syscalls/pty.rs"]
mod pty;
#[path = "syscalls/locks.rs"]
mod locks;
#[path = "syscalls/xattr.rs"]
mod xattr;
#[path = "syscalls/pipes.rs"]
mod pipes;
#[path = "syscalls/clocks.rs"]
mod clocks;
#[path = "syscalls/timers.rs"]
mod timers;
#[path = "syscalls/jobctl.rs"]
mod jobctl;
#[path = "syscalls/quick.rs"]
mod quick;

const SCRATCH: u64 = 0x10000;
const BRK_START: u64 = 0x20_0000;
const HEAP: u64 = 1 << 20;
const AT_FDCWD: u64 = -100i64 as u64;

struct T {
    s: Shim<'static>,
    p: FakePlatform,
    /// Next free scratch address for strings.
    at: u64,
}

impl T {
    fn new() -> T {
        let cpio: &'static [u8] = Box::leak(sample_rootfs().into_boxed_slice());
        let layout = MemLayout { brk_start: BRK_START, heap_limit: HEAP, mmap_bottom: BRK_START + HEAP, mmap_top: 0x1000_0000 };
        let cfg = Config { uid: 0, gid: 0, cwd: "/".into(), hostname: "h".into(), layout, stack_size: 1 << 16 };
        let mut p = FakePlatform::new();
        p.mem.add(SCRATCH, 0x10000);
        T { s: Shim::new(cpio, cfg), p, at: SCRATCH + 0x8000 }
    }
    fn call(&mut self, nr: u64, a: &[u64]) -> i64 {
        let mut args = [0u64; 6];
        args[..a.len()].copy_from_slice(a);
        match self.s.syscall(&mut self.p, nr, args) {
            Action::Return(v) => v,
            other => panic!("syscall {nr} ended the app: {other:?}"),
        }
    }
    fn str(&mut self, s: &str) -> u64 {
        let at = self.at;
        self.p.mem.write(at, s.as_bytes()).unwrap();
        self.p.mem.write(at + s.len() as u64, &[0]).unwrap();
        self.at += (s.len() as u64 + 16) & !7;
        at
    }
    fn open(&mut self, path: &str, flags: u64) -> i64 {
        let p = self.str(path);
        self.call(OPENAT, &[AT_FDCWD, p, flags, 0o644])
    }
    fn read_all(&mut self, fd: i64) -> Vec<u8> {
        let n = self.call(READ, &[fd as u64, SCRATCH, 4096]);
        assert!(n >= 0, "read: {n}");
        let mut b = vec![0; n as usize];
        self.p.mem.read(SCRATCH, &mut b).unwrap();
        b
    }
    fn cat(&mut self, path: &str) -> Result<Vec<u8>, i64> {
        let fd = self.open(path, 0);
        if fd < 0 {
            return Err(fd);
        }
        let b = self.read_all(fd);
        assert_eq!(self.call(CLOSE, &[fd as u64]), 0);
        Ok(b)
    }
    fn stat(&mut self, path: &str, flags: u64) -> Result<[u8; 128], i64> {
        let p = self.str(path);
        let r = self.call(NEWFSTATAT, &[AT_FDCWD, p, SCRATCH, flags]);
        if r != 0 {
            return Err(r);
        }
        let mut b = [0u8; 128];
        self.p.mem.read(SCRATCH, &mut b).unwrap();
        Ok(b)
    }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

#[test]
fn open_read_close() {
    let mut t = T::new();
    assert_eq!(t.cat("/foo.txt").unwrap(), b"foo\n");
    assert_eq!(t.cat("foo.txt").unwrap(), b"foo\n");
    assert_eq!(t.cat("/nope").unwrap_err(), ENOENT.ret());
    assert_eq!(t.call(CLOSE, &[77]), EBADF.ret());
}

#[test]
fn hardlinks_share_data_and_inode() {
    let mut t = T::new();
    assert_eq!(t.cat("/data/one").unwrap(), b"shared\n");
    let a = t.stat("/data/one", 0).unwrap();
    let b = t.stat("/data/two", 0).unwrap();
    assert_eq!(u64_at(&a, 8), u64_at(&b, 8), "same st_ino");
    assert_eq!(u32_at(&a, 20), 2, "st_nlink");
    assert_eq!(u64_at(&a, 48), 7, "st_size");
}

#[test]
fn symlinks_loops_and_dotdot() {
    let mut t = T::new();
    assert_eq!(t.cat("/data/link").unwrap(), b"shared\n");
    assert_eq!(t.cat("/data/abs").unwrap(), b"foo\n");
    assert_eq!(t.cat("/data/up").unwrap(), b"foo\n", ".. is clamped at the root");
    assert_eq!(t.cat("/../../foo.txt").unwrap(), b"foo\n");
    assert_eq!(t.cat("/data/loop").unwrap_err(), ELOOP.ret());
    assert_eq!(t.open("/data/link", 0o100000), ELOOP.ret(), "O_NOFOLLOW");
    assert_eq!(t.open("/foo.txt", 0o40000), ENOTDIR.ret(), "O_DIRECTORY");
    assert_eq!(t.cat("/data/dirlink/app").unwrap(), b"\x7fELF");
    let st = t.stat("/data/link", 0x100).unwrap();
    assert_eq!(u32_at(&st, 16) & 0o170000, 0o120000, "lstat sees the link");
    let p = t.str("/data/abs");
    let n = t.call(READLINKAT, &[AT_FDCWD, p, SCRATCH, 100]);
    assert_eq!(n, 8);
    let mut b = [0u8; 8];
    t.p.mem.read(SCRATCH, &mut b).unwrap();
    assert_eq!(&b, b"/foo.txt");
    let p = t.str("/foo.txt");
    assert_eq!(t.call(READLINKAT, &[AT_FDCWD, p, SCRATCH, 100]), EINVAL.ret());
    t.s.set_program(&ExecImage { path: b"/bin/app".to_vec(), execfn: b"/bin/app".to_vec(), argv: vec![b"app".to_vec(), b"-x".to_vec()], envp: vec![b"A=1".to_vec()] });
    assert_eq!(t.cat("/proc/self/exe").unwrap(), b"\x7fELF");
    assert_eq!(t.cat("/proc/self/cmdline").unwrap(), b"app\0-x\0");
    assert_eq!(t.cat("/proc/1/environ").unwrap(), b"A=1\0");
    assert_eq!(t.cat("/proc/self/comm").unwrap(), b"app\n");
}

#[test]
fn dirfd_and_cwd() {
    let mut t = T::new();
    let d = t.open("/data", 0o40000);
    assert!(d >= 3);
    let p = t.str("link");
    let fd = t.call(OPENAT, &[d as u64, p, 0, 0]);
    assert!(fd >= 0);
    assert_eq!(t.read_all(fd), b"shared\n");
    let p = t.str("/data/../bin");
    assert_eq!(t.call(CHDIR, &[p]), 0);
    let n = t.call(GETCWD, &[SCRATCH, 64]);
    assert_eq!(n, 5);
    let mut b = [0u8; 5];
    t.p.mem.read(SCRATCH, &mut b).unwrap();
    assert_eq!(&b, b"/bin\0");
    assert_eq!(t.call(GETCWD, &[SCRATCH, 3]), ERANGE.ret());
    assert_eq!(t.cat("app").unwrap(), b"\x7fELF");
    let p = t.str("/foo.txt");
    assert_eq!(t.call(CHDIR, &[p]), ENOTDIR.ret());
}

#[test]
fn getdents_lists_sorted_entries() {
    let mut t = T::new();
    let d = t.open("/data", 0o40000);
    let mut names = Vec::new();
    loop {
        let n = t.call(GETDENTS64, &[d as u64, SCRATCH, 64]);
        assert!(n >= 0);
        if n == 0 {
            break;
        }
        let mut b = vec![0; n as usize];
        t.p.mem.read(SCRATCH, &mut b).unwrap();
        let mut o = 0;
        while o < b.len() {
            let reclen = u16::from_le_bytes([b[o + 16], b[o + 17]]) as usize;
            let name = &b[o + 19..o + reclen];
            let end = name.iter().position(|&c| c == 0).unwrap();
            names.push(String::from_utf8(name[..end].to_vec()).unwrap());
            o += reclen;
        }
    }
    assert_eq!(names, [".", "..", "abs", "dirlink", "link", "loop", "one", "two", "up"]);
    assert_eq!(t.call(GETDENTS64, &[0, SCRATCH, 4096]), ENOTDIR.ret());
}

#[test]
fn dev_nodes_exist_without_an_image_dev() {
    let mut t = T::new();
    assert_eq!(t.cat("/dev/null").unwrap(), b"");
    let z = t.open("/dev/zero", 0);
    t.p.mem.write(SCRATCH, &[9; 16]).unwrap();
    assert_eq!(t.call(READ, &[z as u64, SCRATCH, 16]), 16);
    let mut b = [1u8; 16];
    t.p.mem.read(SCRATCH, &mut b).unwrap();
    assert_eq!(b, [0; 16]);
    let full = t.open("/dev/full", 1);
    assert_eq!(t.call(WRITE, &[full as u64, SCRATCH, 4]), ENOSPC.ret());
    let r = t.open("/dev/urandom", 0);
    assert_eq!(t.call(READ, &[r as u64, SCRATCH, 4]), 4);
    t.p.mem.read(SCRATCH, &mut b[..4]).unwrap();
    assert_ne!(&b[..4], &[0, 0, 0, 0]);
    let out = t.open("/dev/stdout", 1);
    let s = t.str("via /dev/stdout\n");
    assert_eq!(t.call(WRITE, &[out as u64, s, 16]), 16);
    assert_eq!(t.p.stdout, b"via /dev/stdout\n");
    assert_eq!(t.open("/dev/tty", 2), ENXIO.ret(), "no terminal");
    let p = t.str("/dev/fd");
    let n = t.call(READLINKAT, &[AT_FDCWD, p, SCRATCH, 64]);
    assert_eq!(n, 13);
}

#[test]
fn terminals_answer_ioctls_only_when_terminals() {
    let mut t = T::new();
    assert_eq!(t.call(IOCTL, &[1, 0x5413, SCRATCH]), ENOTTY.ret());
    let f = t.open("/foo.txt", 0);
    assert_eq!(t.call(IOCTL, &[f as u64, 0x5401, SCRATCH]), ENOTTY.ret());
    t.p.terminal = true;
    assert_eq!(t.call(IOCTL, &[1, 0x5413, SCRATCH]), 0);
    let mut b = [0u8; 4];
    t.p.mem.read(SCRATCH, &mut b).unwrap();
    assert_eq!(b, [24, 0, 80, 0]);
    assert_eq!(t.call(IOCTL, &[2, 0x5401, SCRATCH]), 0);
    assert!(t.open("/dev/tty", 2) >= 0);
}

#[test]
fn tmpfs_and_the_rootfs_are_writable_and_proc_is_not() {
    let mut t = T::new();
    let fd = t.open("/tmp/x", 0o102); // O_CREAT|O_RDWR
    assert!(fd >= 0);
    let s = t.str("hello");
    assert_eq!(t.call(WRITE, &[fd as u64, s, 5]), 5);
    assert_eq!(t.call(LSEEK, &[fd as u64, 0, 0]), 0);
    assert_eq!(t.read_all(fd), b"hello");
    assert_eq!(t.call(PWRITE64, &[fd as u64, s, 2, 10]), 2);
    assert_eq!(t.call(FSTAT, &[fd as u64, SCRATCH]), 0);
    let mut st = [0u8; 128];
    t.p.mem.read(SCRATCH, &mut st).unwrap();
    assert_eq!(u64_at(&st, 48), 12);
    assert_eq!(t.open("/tmp/x", 0o302), EEXIST.ret(), "O_CREAT|O_EXCL");
    assert!(t.open("/data/new", 0o102) >= 0, "the rootfs takes new files");
    assert_eq!(t.open("/proc/self/new", 0o102), EROFS.ret());
    let d = t.str("/tmp/d");
    assert_eq!(t.call(MKDIRAT, &[AT_FDCWD, d, 0o755]), 0);
    assert_eq!(t.call(MKDIRAT, &[AT_FDCWD, d, 0o755]), EEXIST.ret());
    assert_eq!(t.call(UNLINKAT, &[AT_FDCWD, d, 0x200]), 0);
    let x = t.str("/tmp/x");
    assert_eq!(t.call(UNLINKAT, &[AT_FDCWD, x, 0]), 0);
    assert_eq!(t.cat("/tmp/x").unwrap_err(), ENOENT.ret());
    let tmp = t.str("/tmp");
    assert_eq!(t.call(UNLINKAT, &[AT_FDCWD, tmp, 0x200]), EBUSY.ret(), "a mount point");
}

#[test]
fn a_deleted_file_keeps_its_bytes_until_its_last_fd_closes_then_they_are_freed() {
    let mut t = T::new();
    let ino_of = |t: &mut T, fd: i64| {
        assert_eq!(t.call(FSTAT, &[fd as u64, SCRATCH]), 0);
        let mut st = [0u8; 128];
        t.p.mem.read(SCRATCH, &mut st).unwrap();
        u64_at(&st, 8)
    };
    let fd = t.open("/tmp/gone", 0o102); // O_CREAT|O_RDWR
    let dup = t.call(DUP, &[fd as u64]);
    let ino = ino_of(&mut t, fd);
    let s = t.str("still here");
    assert_eq!(t.call(WRITE, &[fd as u64, s, 10]), 10);
    let p = t.str("/tmp/gone");
    assert_eq!(t.call(UNLINKAT, &[AT_FDCWD, p, 0]), 0);
    assert_eq!(t.s.vfs.orphans(), 1);
    assert_eq!(t.call(CLOSE, &[fd as u64]), 0);
    assert_eq!(t.s.vfs.orphans(), 1, "the dup still holds it");
    assert_eq!(t.call(LSEEK, &[dup as u64, 0, 0]), 0);
    assert_eq!(t.read_all(dup), b"still here");
    assert_eq!(t.call(CLOSE, &[dup as u64]), 0);
    assert_eq!(t.s.vfs.orphans(), 0, "the last close frees it");
    // Its node is free: the next file gets it, empty.
    let again = t.open("/tmp/new", 0o102);
    assert_eq!(ino_of(&mut t, again), ino);
    assert_eq!(t.read_all(again), b"");
    // An O_TMPFILE never linked goes at its close too; one linked stays.
    let tmp = t.open("/tmp", 0o20040002);
    assert!(tmp >= 0);
    assert_eq!(t.s.vfs.orphans(), 1);
    assert_eq!(t.call(CLOSE, &[tmp as u64]), 0);
    assert_eq!(t.s.vfs.orphans(), 0);
}

#[test]
fn image_files_are_copied_on_write_and_the_image_is_unchanged() {
    let mut t = T::new();
    let fd = t.open("/foo.txt", 0o2001); // O_WRONLY|O_APPEND
    assert!(fd >= 0);
    let s = t.str("bar\n");
    assert_eq!(t.call(WRITE, &[fd as u64, s, 4]), 4);
    assert_eq!(t.cat("/foo.txt").unwrap(), b"foo\nbar\n");
    // /data/one and /data/two are one hardlinked inode: both names see the change.
    let fd = t.open("/data/one", 0o1001); // O_WRONLY|O_TRUNC
    assert!(fd >= 0);
    assert_eq!(t.cat("/data/two").unwrap(), b"");
    let f = t.str("/foo.txt");
    assert_eq!(t.call(UNLINKAT, &[AT_FDCWD, f, 0]), 0, "an image file is whited out");
    assert_eq!(t.cat("/foo.txt").unwrap_err(), ENOENT.ret());
    let b = t.str("/bin");
    assert_eq!(t.call(UNLINKAT, &[AT_FDCWD, b, 0x200]), ENOTEMPTY.ret());
    // Another app on the same image sees it as packed.
    let mut other = T::new();
    assert_eq!(other.cat("/foo.txt").unwrap(), b"foo\n");
    assert_eq!(other.cat("/data/two").unwrap(), b"shared\n");
}

#[test]
fn rename_link_and_symlink_behave_as_on_linux() {
    let mut t = T::new();
    let (two, moved) = (t.str("/data/two"), t.str("/moved"));
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, two, AT_FDCWD, moved, 0]), 0);
    assert_eq!(t.cat("/moved").unwrap(), b"shared\n");
    assert_eq!(t.cat("/data/two").unwrap_err(), ENOENT.ret());
    // Replacing a file drops that file; NOREPLACE refuses; EXCHANGE swaps.
    let foo = t.str("/foo.txt");
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, moved, AT_FDCWD, foo, 1]), EEXIST.ret());
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, moved, AT_FDCWD, foo, 2]), 0);
    assert_eq!(t.cat("/foo.txt").unwrap(), b"shared\n");
    assert_eq!(t.cat("/moved").unwrap(), b"foo\n");
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, moved, AT_FDCWD, foo, 0]), 0);
    assert_eq!(t.cat("/foo.txt").unwrap(), b"foo\n");
    // Directories: with their contents, never below themselves, only over empty ones.
    let (data, bin, sub) = (t.str("/data"), t.str("/bin"), t.str("/data/sub"));
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, data, AT_FDCWD, sub, 0]), EINVAL.ret());
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, data, AT_FDCWD, bin, 0]), ENOTEMPTY.ret());
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, data, AT_FDCWD, foo, 0]), ENOTDIR.ret());
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, foo, AT_FDCWD, data, 0]), EISDIR.ret());
    let d2 = t.str("/d2");
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, data, AT_FDCWD, d2, 0]), 0);
    assert_eq!(t.cat("/d2/link").unwrap_err(), ENOENT.ret(), "two was moved away: the link dangles");
    assert_eq!(t.cat("/d2/abs").unwrap(), b"foo\n");
    assert_eq!(t.stat("/d2/..", 0).unwrap(), t.stat("/", 0).unwrap(), "its parent follows");
    // Across filesystems: EXDEV, as between a tmpfs and the root.
    let tmpf = t.str("/tmp/f");
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, foo, AT_FDCWD, tmpf, 0]), EXDEV.ret());
    let tmp = t.str("/tmp");
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, tmp, AT_FDCWD, d2, 0]), EBUSY.ret());
    // Hard links share the inode and count in st_nlink; directories cannot be linked.
    let hard = t.str("/hard");
    assert_eq!(t.call(LINKAT, &[AT_FDCWD, foo, AT_FDCWD, hard, 0]), 0);
    assert_eq!(u32_at(&t.stat("/foo.txt", 0).unwrap(), 20), 2);
    assert_eq!(t.call(LINKAT, &[AT_FDCWD, bin, AT_FDCWD, hard, 0]), EPERM.ret());
    assert_eq!(t.call(LINKAT, &[AT_FDCWD, foo, AT_FDCWD, tmpf, 0]), EXDEV.ret());
    let fd = t.open("/hard", 0o1);
    let s = t.str("new\n");
    assert_eq!(t.call(WRITE, &[fd as u64, s, 4]), 4);
    assert_eq!(t.cat("/foo.txt").unwrap(), b"new\n");
    // Symlinks.
    let (target, ln) = (t.str("foo.txt"), t.str("/ln"));
    assert_eq!(t.call(SYMLINKAT, &[target, AT_FDCWD, ln]), 0);
    assert_eq!(t.cat("/ln").unwrap(), b"new\n");
    assert_eq!(t.call(SYMLINKAT, &[target, AT_FDCWD, ln]), EEXIST.ret());
    let (empty, ln2) = (t.str(""), t.str("/ln2"));
    assert_eq!(t.call(SYMLINKAT, &[empty, AT_FDCWD, ln2]), ENOENT.ret());
}

#[test]
fn o_tmpfile_gets_a_name_by_linkat() {
    let mut t = T::new();
    let fd = t.open("/data", 0o20040002); // O_TMPFILE|O_RDWR
    assert!(fd >= 0, "{fd}");
    let s = t.str("anon");
    assert_eq!(t.call(WRITE, &[fd as u64, s, 4]), 4);
    assert_eq!(t.call(FSTAT, &[fd as u64, SCRATCH]), 0);
    let mut st = [0u8; 128];
    t.p.mem.read(SCRATCH, &mut st).unwrap();
    assert_eq!(u32_at(&st, 20), 0, "no links yet");
    let (empty, named) = (t.str(""), t.str("/data/named"));
    assert_eq!(t.call(LINKAT, &[fd as u64, empty, AT_FDCWD, named, 0x1000]), 0); // AT_EMPTY_PATH
    assert_eq!(t.cat("/data/named").unwrap(), b"anon");
    assert_eq!(t.open("/data", 0o20040000), EINVAL.ret(), "O_TMPFILE needs write access");
    assert_eq!(t.open("/proc/self", 0o20040002), EROFS.ret());
}

#[test]
fn the_rootfs_layer_has_its_own_quota_and_statfs_says_so() {
    let mut t = T::new();
    t.s.vfs.set_rootfs_limit(8192);
    let fd = t.open("/data/big", 0o102);
    let page = SCRATCH;
    assert_eq!(t.call(PWRITE64, &[fd as u64, page, 4096, 0]), 4096);
    assert_eq!(t.call(PWRITE64, &[fd as u64, page, 4096, 4096]), 4096);
    assert_eq!(t.call(PWRITE64, &[fd as u64, page, 1, 8192]), ENOSPC.ret());
    // Copying an image file up counts it in full.
    let foo = t.open("/foo.txt", 0o2001);
    let s = t.str("x");
    assert_eq!(t.call(WRITE, &[foo as u64, s, 1]), ENOSPC.ret());
    // /tmp is another filesystem with its own room.
    let tfd = t.open("/tmp/f", 0o102);
    assert_eq!(t.call(PWRITE64, &[tfd as u64, page, 4096, 0]), 4096);
    // Truncating gives the room back.
    assert_eq!(t.call(FTRUNCATE, &[fd as u64, 0]), 0);
    assert_eq!(t.call(WRITE, &[foo as u64, s, 1]), 1);
    let root = t.str("/");
    assert_eq!(t.call(STATFS, &[root, SCRATCH]), 0);
    let mut sf = [0u8; 120];
    t.p.mem.read(SCRATCH, &mut sf).unwrap();
    assert_eq!(u64_at(&sf, 0), 0x794c_7630, "overlayfs");
    assert_eq!(u64_at(&sf, 8), 4096);
    let image = sample_rootfs().len();
    assert_eq!(u64_at(&sf, 16), ((8192 + image) / 4096) as u64, "8 KiB to write and the image, in 4 KiB blocks");
    assert_eq!(u64_at(&sf, 24), 1, "foo.txt's 5 bytes take part of one");
    assert_eq!(t.call(FSTATFS, &[tfd as u64, SCRATCH]), 0);
    t.p.mem.read(SCRATCH, &mut sf).unwrap();
    assert_eq!(u64_at(&sf, 0), 0x0102_1994, "tmpfs");
    let p = t.str("/proc/self");
    assert_eq!(t.call(STATFS, &[p, SCRATCH]), 0);
    t.p.mem.read(SCRATCH, &mut sf).unwrap();
    assert_eq!(u64_at(&sf, 0), 0x9fa0, "proc");
}

#[test]
fn dup_fcntl_and_shared_offsets() {
    let mut t = T::new();
    let fd = t.open("/data/two", 0o2000000); // O_CLOEXEC
    assert_eq!(t.call(FCNTL, &[fd as u64, 1]), 1, "FD_CLOEXEC set");
    let d = t.call(DUP, &[fd as u64]);
    assert_eq!(t.call(FCNTL, &[d as u64, 1]), 0, "dup clears FD_CLOEXEC");
    assert_eq!(t.call(READ, &[fd as u64, SCRATCH, 3]), 3);
    assert_eq!(t.read_all(d), b"red\n", "offset is shared");
    assert_eq!(t.call(DUP3, &[fd as u64, fd as u64, 0]), EINVAL.ret());
    assert_eq!(t.call(DUP3, &[fd as u64, 40, 0o2000000]), 40);
    assert_eq!(t.call(FCNTL, &[40, 1]), 1);
    assert_eq!(t.call(FCNTL, &[fd as u64, 1030, 100]), 100, "F_DUPFD_CLOEXEC");
    assert_eq!(t.call(FCNTL, &[fd as u64, 3]), 0, "F_GETFL O_RDONLY");
    assert_eq!(t.call(FCNTL, &[1, 3]), 1, "stdout is O_WRONLY");
    assert_eq!(t.call(PREAD64, &[fd as u64, SCRATCH, 2, 1]), 2);
    let mut b = [0u8; 2];
    t.p.mem.read(SCRATCH, &mut b).unwrap();
    assert_eq!(&b, b"ha");
}

#[test]
fn readv_writev_and_efault() {
    let mut t = T::new();
    let a = t.str("ab");
    let b = t.str("cde");
    let iov = SCRATCH + 0x100;
    for (i, (p, l)) in [(a, 2u64), (b, 3)].iter().enumerate() {
        t.p.mem.write_u64(iov + 16 * i as u64, *p).unwrap();
        t.p.mem.write_u64(iov + 16 * i as u64 + 8, *l).unwrap();
    }
    assert_eq!(t.call(WRITEV, &[2, iov, 2]), 5);
    assert_eq!(t.p.stderr, b"abcde");
    assert_eq!(t.call(WRITE, &[1, 0xdead_0000, 4]), EFAULT.ret());
    let fd = t.open("/foo.txt", 0);
    assert_eq!(t.call(READ, &[fd as u64, 0xdead_0000, 4]), EFAULT.ret());
    assert_eq!(t.call(OPENAT, &[AT_FDCWD, 0xdead_0000, 0, 0]), EFAULT.ret());
    assert_eq!(t.call(WRITE, &[0, a, 1]), EBADF.ret(), "stdin is read-only");
}

#[test]
fn stat_and_statx() {
    let mut t = T::new();
    let st = t.stat("/foo.txt", 0).unwrap();
    assert_eq!(u32_at(&st, 16), 0o100644);
    let p = t.str("/data");
    assert_eq!(t.call(STATX, &[AT_FDCWD, p, 0, 0x7ff, SCRATCH]), 0);
    let mut sx = [0u8; 256];
    t.p.mem.read(SCRATCH, &mut sx).unwrap();
    assert_eq!(u16::from_le_bytes([sx[28], sx[29]]) as u32, 0o040755);
    let e = t.str("");
    let fd = t.open("/foo.txt", 0);
    assert_eq!(t.call(NEWFSTATAT, &[fd as u64, e, SCRATCH, 0x1000]), 0, "AT_EMPTY_PATH");
    assert_eq!(t.call(NEWFSTATAT, &[fd as u64, e, SCRATCH, 0]), ENOENT.ret());
    let p = t.str("/foo.txt");
    assert_eq!(t.call(FACCESSAT, &[AT_FDCWD, p, 1]), EACCES.ret(), "X_OK on 0644");
    assert_eq!(t.call(FACCESSAT, &[AT_FDCWD, p, 4]), 0);
}

#[test]
fn brk_is_bounded_by_heap() {
    let mut t = T::new();
    assert_eq!(t.call(BRK, &[0]) as u64, BRK_START);
    assert_eq!(t.call(BRK, &[BRK_START + 10_000]) as u64, BRK_START + 10_000);
    t.p.mem.write(BRK_START + 9_999, &[1]).unwrap();
    assert_eq!(t.call(BRK, &[BRK_START + HEAP + 4096]) as u64, BRK_START + 10_000, "beyond the heap: unchanged");
    assert_eq!(t.call(BRK, &[BRK_START]) as u64, BRK_START);
    assert!(t.p.mem.write(BRK_START, &[1]).is_err(), "shrunk brk is unmapped");
}

#[test]
fn mmap_munmap_mprotect_mremap() {
    let mut t = T::new();
    let m = t.call(MMAP, &[0, 3 * 4096, 3, 0x22, u64::MAX, 0]);
    assert!(m > 0 && m % 4096 == 0, "{m}");
    let m = m as u64;
    t.p.mem.write(m + 4096, b"keep").unwrap();
    assert_eq!(t.call(MPROTECT, &[m, 4096, 1]), 0);
    assert_eq!(t.call(MPROTECT, &[m + 1, 4096, 1]), EINVAL.ret());
    assert_eq!(t.s.mm.lookup(m).unwrap().prot.0, 1);
    assert_eq!(t.s.mm.lookup(m + 4096).unwrap().prot.0, 3);
    assert_eq!(t.call(MREMAP, &[m, 3 * 4096, 40 * 4096, 1, 0]), EFAULT.ret(), "spans two regions, as Linux");
    let r = t.call(MREMAP, &[m + 4096, 2 * 4096, 40 * 4096, 1, 0]);
    assert!(r > 0, "mremap: {r}");
    let r = r as u64;
    let mut b = [0u8; 4];
    t.p.mem.read(r, &mut b).unwrap();
    assert_eq!(&b, b"keep");
    assert_eq!(t.call(MUNMAP, &[r, 40 * 4096]), 0);
    assert!(t.s.mm.lookup(r).is_none());
    assert_eq!(t.call(MMAP, &[0, HEAP * 2, 3, 0x22, u64::MAX, 0]), ENOMEM.ret(), "beyond the heap");
    assert_eq!(t.call(MREMAP, &[0x5000_0000, 4096, 8192, 1, 0]), EFAULT.ret());
    let fixed = 0x800_0000u64;
    assert_eq!(t.call(MMAP, &[fixed, 4096, 3, 0x32, u64::MAX, 0]) as u64, fixed, "MAP_FIXED");
    assert_eq!(t.call(MMAP, &[fixed, 4096, 3, 0x100022, u64::MAX, 0]), EEXIST.ret(), "MAP_FIXED_NOREPLACE");
    let fd = t.open("/foo.txt", 0);
    let f = t.call(MMAP, &[0, 4096, 1, 2, fd as u64, 0]) as u64;
    t.p.mem.read(f, &mut b).unwrap();
    assert_eq!(&b, b"foo\n");
    assert_eq!(t.call(MMAP, &[0, 4096, 3, 1, fd as u64, 0]), EACCES.ret(), "shared writable");
    assert_eq!(t.call(MADVISE, &[fixed, 4096, 4]), 0);
}

#[test]
fn process_time_and_futex() {
    let mut t = T::new();
    assert_eq!(t.call(GETPID, &[]), 1);
    assert_eq!(t.call(GETUID, &[]), 0);
    assert_eq!(t.call(UNAME, &[SCRATCH]), 0);
    let mut b = [0u8; 65];
    t.p.mem.read(SCRATCH + 4 * 65, &mut b).unwrap();
    assert_eq!(&b[..8], b"aarch64\0");
    t.p.mem.write_u32(SCRATCH, 5).unwrap();
    assert_eq!(t.call(FUTEX, &[SCRATCH, 128, 4]), EAGAIN.ret(), "value changed");
    assert_eq!(t.call(FUTEX, &[SCRATCH, 129, 1]), 0, "wake nobody");
    let ts = SCRATCH + 64;
    t.p.mem.write_u64(ts, 0).unwrap();
    t.p.mem.write_u64(ts + 8, 5_000).unwrap();
    assert_eq!(t.call(FUTEX, &[SCRATCH, 128, 5, ts]), -110, "timed wait times out");
    assert!(t.p.slept_ns >= 5_000);
    assert_eq!(t.call(CLOCK_GETTIME, &[1, SCRATCH]), 0);
    let a = t.p.mem.read_u64(SCRATCH + 8).unwrap() + t.p.mem.read_u64(SCRATCH).unwrap() * 1_000_000_000;
    assert_eq!(t.call(NANOSLEEP, &[ts, 0]), 0);
    assert_eq!(t.call(CLOCK_GETTIME, &[1, SCRATCH]), 0);
    let c = t.p.mem.read_u64(SCRATCH + 8).unwrap() + t.p.mem.read_u64(SCRATCH).unwrap() * 1_000_000_000;
    assert!(c >= a + 5_000);
    t.p.mem.write_u64(ts + 8, 2_000_000_000).unwrap();
    assert_eq!(t.call(NANOSLEEP, &[ts, 0]), EINVAL.ret());
    assert_eq!(t.call(CLOCK_GETTIME, &[77, SCRATCH]), EINVAL.ret());
    assert_eq!(t.call(GETRANDOM, &[SCRATCH, 16, 0]), 16);
    assert_eq!(t.call(PRLIMIT64, &[0, 3, 0, SCRATCH]), 0);
    assert_eq!(t.p.mem.read_u64(SCRATCH).unwrap(), 1 << 16, "RLIMIT_STACK");
    assert_eq!(t.call(SET_TID_ADDRESS, &[SCRATCH]), 1);
    assert_eq!(t.call(SET_ROBUST_LIST, &[SCRATCH, 24]), 0);
}

#[test]
fn signals_exit_and_unknown_syscalls() {
    let mut t = T::new();
    assert_eq!(t.call(RT_SIGACTION, &[2, 0, SCRATCH, 8]), 0);
    assert_eq!(t.call(RT_SIGACTION, &[9, SCRATCH, 0, 8]), EINVAL.ret(), "SIGKILL");
    t.p.mem.write_u64(SCRATCH + 512, 1 << 5).unwrap();
    assert_eq!(t.call(RT_SIGPROCMASK, &[0, SCRATCH + 512, SCRATCH, 8]), 0);
    assert_eq!(t.call(RT_SIGPROCMASK, &[0, 0, SCRATCH, 8]), 0);
    assert_eq!(t.p.mem.read_u64(SCRATCH).unwrap(), 1 << 5);
    // SIGABRT (6) is blocked now: it stays pending, and unblocking it ends the app, as
    // on Linux (musl's raise blocks signals around its tkill).
    assert_eq!(t.call(TKILL, &[1, 6]), 0);
    t.p.mem.write_u64(SCRATCH + 512, 0).unwrap();
    assert_eq!(t.s.syscall(&mut t.p, RT_SIGPROCMASK, [2, SCRATCH + 512, 0, 8, 0, 0]), Action::Killed(6));
    assert_eq!(t.call(RT_SIGPROCMASK, &[2, SCRATCH + 512, 0, 8]), 0, "delivered once");
    assert_eq!(t.s.syscall(&mut t.p, TKILL, [1, 6, 0, 0, 0, 0]), Action::Killed(6));
    assert_eq!(t.call(999, &[]), ENOSYS.ret());
    assert_eq!(t.call(999, &[]), ENOSYS.ret());
    assert_eq!(t.s.unserviced_seen(), [999]);
    assert_eq!(t.s.syscall(&mut t.p, EXIT_GROUP, [0x1_03, 0, 0, 0, 0, 0]), Action::Exit(3));
}

#[test]
fn ppoll_reports_ready_and_invalid_fds() {
    let mut t = T::new();
    let pf = SCRATCH + 0x200;
    for (i, fd) in [0i32, 1, 50].iter().enumerate() {
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&fd.to_le_bytes());
        e[4..6].copy_from_slice(&5u16.to_le_bytes());
        t.p.mem.write(pf + 8 * i as u64, &e).unwrap();
    }
    assert_eq!(t.call(PPOLL, &[pf, 3, 0, 0, 8]), 3);
    let mut e = [0u8; 8];
    t.p.mem.read(pf + 16, &mut e).unwrap();
    assert_eq!(u16::from_le_bytes([e[6], e[7]]), 0x20, "POLLNVAL");
}

#[test]
fn serviced_table_is_large_and_unique() {
    let mut nrs: Vec<u64> = SERVICED.iter().map(|s| s.0).collect();
    let n = nrs.len();
    nrs.sort_unstable();
    nrs.dedup();
    assert_eq!(nrs.len(), n, "duplicate numbers");
    assert!(n >= 60, "only {n} syscalls serviced");
    // Every listed syscall reaches a handler (not the ENOSYS fallback).
    let mut t = T::new();
    for &(nr, name, _) in SERVICED {
        if nr == EXIT || nr == EXIT_GROUP || nr == KILL || nr == TKILL || nr == TGKILL {
            continue;
        }
        let _ = t.s.syscall(&mut t.p, nr, [0; 6]);
        assert!(!t.s.unserviced_seen().contains(&nr), "{name} fell through");
    }
}

/// README.md's table is generated from `SERVICED`; regenerate with
/// `UPDATE_README=1 cargo test -p musl-shim readme`.
#[test]
fn readme_table_is_current() {
    let mut table = String::from("| nr | syscall | module |\n|---:|---|---|\n");
    let mut rows: Vec<_> = SERVICED.to_vec();
    rows.sort_by_key(|r| r.0);
    for (nr, name, family) in rows {
        table += &format!("| {nr} | {} | `sys::{family}` |\n", name.to_lowercase());
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap_or_default();
    let (start, end) = ("<!-- syscalls:start -->\n", "<!-- syscalls:end -->");
    let (Some(a), Some(b)) = (readme.find(start), readme.find(end)) else {
        panic!("README.md lacks the {start:?} / {end:?} markers");
    };
    let fresh = format!("{}{start}{table}{}", &readme[..a], &readme[b..]);
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(path, &fresh).unwrap();
    } else {
        assert!(fresh == readme, "README.md's syscall table is stale: run UPDATE_README=1 cargo test -p musl-shim readme");
    }
}

#[test]
fn sendfile_and_close_range() {
    let mut t = T::new();
    let fd = t.open("/data/two", 0);
    let off = SCRATCH + 0x300;
    t.p.mem.write_u64(off, 2).unwrap();
    assert_eq!(t.call(SENDFILE, &[1, fd as u64, off, 100]), 5);
    assert_eq!(t.p.stdout, b"ared\n");
    assert_eq!(t.p.mem.read_u64(off).unwrap(), 7, "offset advanced");
    assert_eq!(t.call(SENDFILE, &[1, fd as u64, 0, 3]), 3, "from the file position");
    assert_eq!(t.p.stdout, b"ared\nsha");
    assert_eq!(t.call(SENDFILE, &[fd as u64, 1, 0, 3]), EBADF.ret());
    let a = t.open("/foo.txt", 0);
    let b = t.open("/foo.txt", 0);
    assert_eq!(t.call(CLOSE_RANGE, &[a as u64, u32::MAX as u64, 4]), 0);
    assert_eq!(t.call(FCNTL, &[b as u64, 1]), 1, "CLOSE_RANGE_CLOEXEC");
    assert_eq!(t.call(CLOSE_RANGE, &[a as u64, b as u64, 0]), 0);
    assert_eq!(t.call(CLOSE, &[a as u64]), EBADF.ret());
    assert_eq!(t.call(CLOSE, &[fd as u64]), 0, "below the range: still open");
}

#[test]
fn proc_and_sys_describe_the_app() {
    let mut t = T::new();
    t.s.set_program(&ExecImage { path: b"/bin/app".to_vec(), execfn: b"/bin/app".to_vec(), argv: vec![b"app".to_vec()], envp: vec![] });
    let text = |t: &mut T, p: &str| String::from_utf8(t.cat(p).unwrap_or_else(|e| panic!("{p}: {e}"))).unwrap();
    // The app's own budget and its one core.
    assert_eq!(text(&mut t, "/sys/fs/cgroup/memory.max"), format!("{HEAP}\n"));
    assert_eq!(text(&mut t, "/sys/devices/system/cpu/online"), "0\n");
    assert!(text(&mut t, "/proc/meminfo").starts_with(&format!("MemTotal:       {:>8} kB\n", HEAP / 1024)));
    assert_eq!(text(&mut t, "/proc/cpuinfo").matches("processor").count(), 1);
    let status = text(&mut t, "/proc/self/status");
    assert!(status.starts_with("Name:\tapp\nUmask:\t0022\nState:\tR (running)\nTgid:\t1\n"), "{status}");
    assert!(text(&mut t, "/proc/1/task/1/stat").starts_with("1 (app) R 0 1 1 "));
    assert_eq!(text(&mut t, "/proc/sys/kernel/osrelease"), "6.1.0-selkie\n");
    assert!(text(&mut t, "/proc/mounts").contains("overlay / overlay rw,relatime 0 0\n"));
    // Read-only, and stat says size 0 as Linux does.
    assert_eq!(t.open("/proc/self/status", 1), EACCES.ret());
    assert_eq!(t.open("/proc/new", 0o102), EROFS.ret());
    assert_eq!(t.open("/sys/new", 0o102), EROFS.ret());
    assert_eq!(u64_at(&t.stat("/proc/self/stat", 0).unwrap(), 48), 0);
    // /proc/self/fd lists the open fds, and its links name the files.
    let f = t.open("/data/two", 0);
    let p = t.str(&format!("/proc/self/fd/{f}"));
    let n = t.call(READLINKAT, &[AT_FDCWD, p, SCRATCH, 100]);
    let mut b = vec![0u8; n as usize];
    t.p.mem.read(SCRATCH, &mut b).unwrap();
    assert_eq!(b, b"/data/one", "the first name of the hardlinked inode");
    let d = t.open("/proc/self/fd", 0o200000);
    let n = t.call(GETDENTS64, &[d as u64, SCRATCH, 4096]);
    let mut ents = vec![0u8; n as usize];
    t.p.mem.read(SCRATCH, &mut ents).unwrap();
    let mut names = Vec::new();
    let mut off = 0;
    while off < ents.len() {
        let reclen = u16::from_le_bytes([ents[off + 16], ents[off + 17]]) as usize;
        let name = &ents[off + 19..off + reclen];
        names.push(String::from_utf8_lossy(&name[..name.iter().position(|&c| c == 0).unwrap()]).into_owned());
        off += reclen;
    }
    assert_eq!(names, [".", "..", "0", "1", "2", &f.to_string(), &d.to_string()]);
    // The image's own /proc is hidden by the mount.
    assert_eq!(t.cat("/proc/anything").unwrap_err(), ENOENT.ret());
}

#[test]
fn copy_file_range_fallocate_memfd_and_shm() {
    let mut t = T::new();
    let src = t.open("/data/two", 0);
    let dst = t.open("/data/copy", 0o102);
    let off = SCRATCH + 0x800;
    t.p.mem.write_u64(off, 2).unwrap();
    assert_eq!(t.call(COPY_FILE_RANGE, &[src as u64, off, dst as u64, 0, 100, 0]), 5);
    assert_eq!(t.p.mem.read_u64(off).unwrap(), 7, "the input offset advanced");
    assert_eq!(t.cat("/data/copy").unwrap(), b"ared\n");
    assert_eq!(t.call(COPY_FILE_RANGE, &[src as u64, 0, dst as u64, 0, 1, 1]), EINVAL.ret(), "flags");
    assert_eq!(t.call(COPY_FILE_RANGE, &[src as u64, 0, 1, 0, 1, 0]), EINVAL.ret(), "stdout is no file");
    // fallocate grows and counts; KEEP_SIZE does not grow; a hole reads as zeros.
    assert_eq!(t.call(FALLOCATE, &[dst as u64, 0, 0, 8192]), 0);
    assert_eq!(u64_at(&t.stat("/data/copy", 0).unwrap(), 48), 8192);
    assert_eq!(t.call(FALLOCATE, &[dst as u64, 1, 0, 1 << 20]), 0);
    assert_eq!(u64_at(&t.stat("/data/copy", 0).unwrap(), 48), 8192);
    assert_eq!(t.call(FALLOCATE, &[dst as u64, 3, 0, 2]), 0);
    assert_eq!(&t.cat("/data/copy").unwrap()[..5], b"\0\0ed\n");
    assert_eq!(t.call(FALLOCATE, &[src as u64, 0, 0, 10]), EBADF.ret(), "read-only fd");
    t.s.vfs.set_rootfs_limit(4096);
    assert_eq!(t.call(FALLOCATE, &[dst as u64, 0, 0, 1 << 20]), ENOSPC.ret());
    // memfd_create: an unnamed tmpfs file.
    let name = t.str("buf");
    let m = t.call(MEMFD_CREATE, &[name, 1]);
    assert!(m >= 0, "{m}");
    let s = t.str("shared!");
    assert_eq!(t.call(WRITE, &[m as u64, s, 7]), 7);
    assert_eq!(t.call(PREAD64, &[m as u64, SCRATCH, 16, 0]), 7);
    assert_eq!(t.call(FCNTL, &[m as u64, 1]), 1, "MFD_CLOEXEC");
    assert_eq!(t.call(MEMFD_CREATE, &[name, 8]), EINVAL.ret());
    // /dev/shm is a sticky, writable tmpfs (shm_open's).
    let st = t.stat("/dev/shm", 0).unwrap();
    assert_eq!(u32_at(&st, 16) & 0o7777, 0o1777);
    assert!(t.open("/dev/shm/sem.x", 0o302) >= 0);
    assert_eq!(t.call(FLOCK, &[dst as u64, 2 | 4]), 0);
    assert_eq!(t.call(FLOCK, &[dst as u64, 16]), EINVAL.ret());
    assert_eq!(t.call(FLOCK, &[99, 2]), EBADF.ret());
}

#[test]
fn priority_personality_and_affinity() {
    let mut t = T::new();
    assert_eq!(t.call(GETPRIORITY, &[0, 0]), 20);
    assert_eq!(t.call(SETPRIORITY, &[0, 0, 5]), 0);
    assert_eq!(t.call(GETPRIORITY, &[0, 1]), 15, "nice 5, by pid");
    assert_eq!(t.call(SETPRIORITY, &[0, 0, 100]), 0);
    assert_eq!(t.call(GETPRIORITY, &[0, 0]), 1, "clamped to 19");
    assert_eq!(t.call(GETPRIORITY, &[0, 42]), ESRCH.ret());
    assert_eq!(t.call(GETPRIORITY, &[7, 0]), EINVAL.ret());
    assert_eq!(t.call(PERSONALITY, &[0xffff_ffff]), 0);
    assert_eq!(t.call(PERSONALITY, &[0x0040000]), 0, "ADDR_NO_RANDOMIZE kept");
    assert_eq!(t.call(PERSONALITY, &[0xffff_ffff]), 0x0040000);
    assert_eq!(t.call(PERSONALITY, &[0x0001]), EINVAL.ret());
    t.p.mem.write_u64(SCRATCH, 1).unwrap();
    assert_eq!(t.call(SCHED_SETAFFINITY, &[0, 8, SCRATCH]), 0);
    t.p.mem.write_u64(SCRATCH, 2).unwrap();
    assert_eq!(t.call(SCHED_SETAFFINITY, &[0, 8, SCRATCH]), EINVAL.ret(), "no cpu 1 here");
}

#[test]
fn utimensat_sets_both_times_to_the_nanosecond() {
    let mut t = T::new();
    let p = t.str("/foo.txt");
    let ts = SCRATCH + 0x400;
    for (i, w) in [5u64, 7, 8, 9].iter().enumerate() {
        t.p.mem.write_u64(ts + 8 * i as u64, *w).unwrap();
    }
    assert_eq!(t.call(UTIMENSAT, &[AT_FDCWD, p, ts, 0]), 0);
    let st = t.stat("/foo.txt", 0).unwrap();
    assert_eq!((u64_at(&st, 72), u32_at(&st, 80), u64_at(&st, 88), u32_at(&st, 96)), (5, 7, 8, 9));
    t.p.mem.write_u64(ts + 8, (1 << 30) - 2).unwrap(); // UTIME_OMIT for atime
    t.p.mem.write_u64(ts + 16, 11).unwrap();
    assert_eq!(t.call(UTIMENSAT, &[AT_FDCWD, p, ts, 0]), 0);
    let st = t.stat("/foo.txt", 0).unwrap();
    assert_eq!((u64_at(&st, 72), u64_at(&st, 88)), (5, 11));
    t.p.mem.write_u64(ts + 8, 1_000_000_000).unwrap();
    assert_eq!(t.call(UTIMENSAT, &[AT_FDCWD, p, ts, 0]), EINVAL.ret());
    let pr = t.str("/proc/self/status");
    assert_eq!(t.call(UTIMENSAT, &[AT_FDCWD, pr, 0, 0]), EROFS.ret());
}

/// The events queued on inotify fd `ifd`: (wd, mask, whether a cookie ties it, name).
fn inotify_events(t: &mut T, ifd: u64) -> Vec<(u32, u32, bool, String)> {
    let n = t.call(READ, &[ifd, SCRATCH, 4096]);
    assert!(n > 0, "no events: {n}");
    let mut b = vec![0u8; n as usize];
    t.p.mem.read(SCRATCH, &mut b).unwrap();
    let mut events = Vec::new();
    let mut off = 0;
    while off < b.len() {
        let (wd, mask, cookie, len) = (u32_at(&b, off), u32_at(&b, off + 4), u32_at(&b, off + 8), u32_at(&b, off + 12) as usize);
        let name = &b[off + 16..off + 16 + len];
        let name = String::from_utf8_lossy(&name[..name.iter().position(|&c| c == 0).unwrap_or(0)]).into_owned();
        events.push((wd, mask, cookie != 0, name));
        off += 16 + len;
    }
    events
}

#[test]
fn inotify_tells_a_directory_of_its_childrens_changes() {
    let mut t = T::new();
    let ifd = t.call(INOTIFY_INIT1, &[0o4000]) as u64;
    let f = t.open("/tmp/f", 0o102);
    let sub = t.str("/tmp/sub");
    assert_eq!(t.call(MKDIRAT, &[AT_FDCWD, sub, 0o755]), 0);
    let (tmp, fp) = (t.str("/tmp"), t.str("/tmp/f"));
    assert_eq!(t.call(INOTIFY_ADD_WATCH, &[ifd, tmp, 0xfff]), 1);
    assert_eq!(t.call(INOTIFY_ADD_WATCH, &[ifd, fp, 0x4]), 2, "IN_ATTRIB on the file too");
    let s = t.str("xy");
    assert_eq!(t.call(WRITE, &[f as u64, s, 2]), 2);
    assert_eq!(t.call(FCHMODAT, &[AT_FDCWD, fp, 0o600, 0]), 0);
    assert_eq!(t.call(FCHMODAT, &[AT_FDCWD, sub, 0o700, 0]), 0);
    let (a, b) = ("f".to_string(), "sub".to_string());
    assert_eq!(
        inotify_events(&mut t, ifd),
        [(1, 0x2, false, a.clone()), (1, 0x4, false, a), (2, 0x4, false, String::new()), (1, 0x4000_0004, false, b)],
        "IN_MODIFY and IN_ATTRIB with the child's name (IN_ISDIR for a directory), the parent's first"
    );
}

#[test]
fn inotify_reports_the_apps_own_changes() {
    let mut t = T::new();
    let ifd = t.call(INOTIFY_INIT1, &[0o4000]) as u64; // IN_NONBLOCK
    assert_eq!(t.call(READ, &[ifd, SCRATCH, 4096]), EAGAIN.ret(), "nothing yet");
    let data = t.str("/data");
    let wd = t.call(INOTIFY_ADD_WATCH, &[ifd, data, 0xfff]);
    assert_eq!(wd, 1);
    let foo = t.str("/foo.txt");
    assert_eq!(t.call(INOTIFY_ADD_WATCH, &[ifd, foo, 0x2]), 2, "IN_MODIFY on a file");
    assert_eq!(t.call(INOTIFY_ADD_WATCH, &[ifd, foo, 0x0100_0002]), ENOTDIR.ret(), "IN_ONLYDIR");
    let f = t.open("/data/new", 0o102);
    let s = t.str("x");
    assert_eq!(t.call(WRITE, &[f as u64, s, 1]), 1);
    let (new, moved) = (t.str("/data/new"), t.str("/data/moved"));
    assert_eq!(t.call(RENAMEAT2, &[AT_FDCWD, new, AT_FDCWD, moved, 0]), 0);
    assert_eq!(t.call(UNLINKAT, &[AT_FDCWD, moved, 0]), 0);
    let ffd = t.open("/foo.txt", 0o2001);
    assert_eq!(t.call(WRITE, &[ffd as u64, s, 1]), 1);
    let events = inotify_events(&mut t, ifd);
    assert_eq!(
        events,
        [
            (1, 0x100, false, "new".to_string()),
            (1, 0x2, false, "new".to_string()),
            (1, 0x40, true, "new".to_string()),
            (1, 0x80, true, "moved".to_string()),
            (1, 0x200, false, "moved".to_string()),
            (2, 0x2, false, String::new()),
        ]
    );
    assert_eq!(t.call(INOTIFY_RM_WATCH, &[ifd, 2]), 0);
    assert_eq!(t.call(INOTIFY_RM_WATCH, &[ifd, 2]), EINVAL.ret());
    assert_eq!(t.call(READ, &[ifd, SCRATCH, 4096]), 16, "IN_IGNORED");
    assert_eq!(u32_at(&{ let mut e = [0u8; 16]; t.p.mem.read(SCRATCH, &mut e).unwrap(); e }, 4), 0x8000);
    assert_eq!(t.call(INOTIFY_ADD_WATCH, &[1, data, 0xfff]), EINVAL.ret(), "not an inotify fd");
}

#[test]
fn proc_pid_fd_and_fdinfo_show_each_process_its_own() {
    let mut t = T::with_tasks();
    let child = t.fork();
    t.run_as(child);
    assert_eq!(t.open("/foo.txt", 0), 3);
    let f = t.open("/tmp/x", 0o2000102); // O_CLOEXEC | O_CREAT | O_RDWR
    let s = t.str("hello");
    assert_eq!(t.call(WRITE, &[f as u64, s, 5]), 5);
    t.run_as(1);
    let dir = format!("/proc/{child}");
    assert_eq!(t.names(&format!("{dir}/fd")), ["0", "1", "2", "3", "4"], "the child's fds, listed from its parent");
    assert_eq!(t.names("/proc/1/fd"), ["0", "1", "2", "3"], "the parent's, with the fd of the listing");
    assert_eq!(t.names(&format!("{dir}/fdinfo")), t.names(&format!("{dir}/fd")));
    let link = t.str(&format!("{dir}/fd/{f}"));
    let n = t.call(READLINKAT, &[AT_FDCWD, link, SCRATCH, 100]);
    assert_eq!(n, 6);
    let info = String::from_utf8(t.cat(&format!("{dir}/fdinfo/{f}")).unwrap()).unwrap();
    assert!(info.starts_with("pos:\t5\nflags:\t02400002\nmnt_id:\t"), "{info}");
    assert!(info.contains("\nino:\t"), "{info}");
    let st = t.stat(&format!("{dir}/fdinfo/{f}"), 0).unwrap();
    assert_eq!(u32_at(&st, 16), 0o100444);
    assert_eq!(t.cat(&format!("{dir}/fd/{f}")).unwrap(), b"hello", "opened anew, at offset 0");
    assert_eq!(t.cat(&format!("{dir}/fdinfo/{}", f + 7)).unwrap_err(), ENOENT.ret());
    assert_eq!(t.stat(&format!("{dir}/fd/{}", f + 7), 0).unwrap_err(), ENOENT.ret());
    let me = String::from_utf8(t.cat("/proc/self/fdinfo/1").unwrap()).unwrap();
    assert!(me.starts_with("pos:\t0\nflags:\t01\n"), "{me}");
}

#[test]
fn fifos_and_socket_paths_are_files() {
    let mut t = T::new();
    let fifo = t.str("/tmp/fifo");
    assert_eq!(t.call(MKNODAT, &[AT_FDCWD, fifo, 0o010644, 0]), 0);
    assert_eq!(u32_at(&t.stat("/tmp/fifo", 0).unwrap(), 16), 0o010644);
    assert_eq!(t.call(MKNODAT, &[AT_FDCWD, fifo, 0o010644, 0]), EEXIST.ret());
    let dev = t.str("/tmp/dev");
    assert_eq!(t.call(MKNODAT, &[AT_FDCWD, dev, 0o020644, 0x0103]), EPERM.ret());
    let reg = t.str("/tmp/reg");
    assert_eq!(t.call(MKNODAT, &[AT_FDCWD, reg, 0o600, 0]), 0);
    assert_eq!(u32_at(&t.stat("/tmp/reg", 0).unwrap(), 16), 0o100600);
    // A socket path becomes a file; while it exists the name is in use, once it is
    // removed the name is free again.
    let sun = SCRATCH + 0x600;
    let mut addr = vec![1u8, 0];
    addr.extend_from_slice(b"/tmp/sock\0");
    t.p.mem.write(sun, &addr).unwrap();
    let a = t.call(SOCKET, &[1, 1, 0]) as u64;
    assert_eq!(t.call(BIND, &[a, sun, addr.len() as u64]), 0);
    assert_eq!(u32_at(&t.stat("/tmp/sock", 0).unwrap(), 16) & 0o170000, 0o140000);
    let b = t.call(SOCKET, &[1, 1, 0]) as u64;
    assert_eq!(t.call(BIND, &[b, sun, addr.len() as u64]), EADDRINUSE.ret());
    let p = t.str("/tmp/sock");
    assert_eq!(t.call(UNLINKAT, &[AT_FDCWD, p, 0]), 0);
    assert_eq!(t.call(BIND, &[b, sun, addr.len() as u64]), 0);
    assert_eq!(t.call(LISTEN, &[b, 4]), 0);
}

#[test]
fn fifos_carry_bytes_between_their_ends() {
    let mut t = T::new();
    let fifo = t.str("/tmp/fifo");
    assert_eq!(t.call(MKNODAT, &[AT_FDCWD, fifo, 0o010644, 0]), 0);
    assert_eq!(t.open("/tmp/fifo", 0o4001), ENXIO.ret(), "O_WRONLY|O_NONBLOCK without a reader");
    let r = t.open("/tmp/fifo", 0o4000);
    assert!(r >= 0, "O_RDONLY|O_NONBLOCK opens at once");
    let w = t.open("/tmp/fifo", 0o4001);
    assert!(w >= 0, "a reader is there now");
    let s = t.str("through");
    assert_eq!(t.call(WRITE, &[w as u64, s, 7]), 7);
    assert_eq!(t.read_all(r), b"through");
    assert_eq!(t.call(CLOSE, &[w as u64]), 0);
    assert_eq!(t.call(READ, &[r as u64, SCRATCH, 16]), 0, "no writer left: end of file");
    let both = t.open("/tmp/fifo", 2);
    assert!(both >= 0, "O_RDWR never waits");
    assert_eq!(t.call(WRITE, &[both as u64, s, 3]), 3);
    assert_eq!(t.read_all(both), b"thr");
}

#[test]
fn nonblocking_tcp_connect_is_in_progress_then_writable() {
    let mut t = T::new();
    let sin = SCRATCH + 0x600;
    t.p.mem.write(sin, &[2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    let l = t.call(SOCKET, &[2, 1, 0]) as u64;
    assert_eq!(t.call(BIND, &[l, sin, 16]), 0);
    assert_eq!(t.call(LISTEN, &[l, 4]), 0);
    let c = t.call(SOCKET, &[2, 1 | 0o4000, 0]) as u64;
    assert_eq!(t.call(CONNECT, &[c, sin, 16]), EINPROGRESS.ret(), "SOCK_NONBLOCK TCP");
    let pf = SCRATCH + 0x200;
    let mut e = [0u8; 8];
    e[..4].copy_from_slice(&(c as i32).to_le_bytes());
    e[4..6].copy_from_slice(&4u16.to_le_bytes());
    t.p.mem.write(pf, &e).unwrap();
    assert_eq!(t.call(PPOLL, &[pf, 1, 0, 0, 8]), 1);
    t.p.mem.read(pf, &mut e).unwrap();
    assert_eq!(u16::from_le_bytes([e[6], e[7]]), 4, "POLLOUT once connected");
    t.p.mem.write(SCRATCH + 0x700, &[0xff; 4]).unwrap();
    t.p.mem.write(SCRATCH + 0x708, &4u32.to_le_bytes()).unwrap();
    assert_eq!(t.call(GETSOCKOPT, &[c, 1, 4, SCRATCH + 0x700, SCRATCH + 0x708]), 0);
    assert_eq!(t.p.mem.read_u32(SCRATCH + 0x700).unwrap(), 0, "SO_ERROR");
    assert_eq!(t.call(CONNECT, &[c, sin, 16]), EISCONN.ret());
    let b = t.call(SOCKET, &[2, 1, 0]) as u64;
    assert_eq!(t.call(CONNECT, &[b, sin, 16]), 0, "a blocking connect completes in the call");
}

#[test]
fn shared_file_mappings_meet_the_file_at_each_syscall() {
    let mut t = T::new();
    let fd = t.open("/tmp/mapped", 0o102) as u64;
    let s = t.str("hello");
    assert_eq!(t.call(WRITE, &[fd, s, 5]), 5);
    assert_eq!(t.call(FTRUNCATE, &[fd, 6000]), 0);
    let m = t.call(MMAP, &[0, 8192, 3, 1, fd, 0]);
    assert!(m > 0, "MAP_SHARED of a tmpfs file: {m}");
    let m = m as u64;
    let mut b = [0u8; 5];
    t.p.mem.read(m, &mut b).unwrap();
    assert_eq!(&b, b"hello");
    // A store through the mapping is what read() sees.
    t.p.mem.write(m, b"J").unwrap();
    assert_eq!(t.call(PREAD64, &[fd, SCRATCH, 5, 0]), 5);
    t.p.mem.read(SCRATCH, &mut b).unwrap();
    assert_eq!(&b, b"Jello");
    // A write to the file shows in the mapping.
    let x = t.str("xyz");
    assert_eq!(t.call(PWRITE64, &[fd, x, 3, 4096]), 3);
    let mut c = [0u8; 3];
    t.p.mem.read(m + 4096, &mut c).unwrap();
    assert_eq!(&c, b"xyz");
    // Stores past the end of the file are not kept.
    t.p.mem.write(m + 7000, b"lost").unwrap();
    assert_eq!(t.call(MSYNC, &[m + 1, 4096, 4]), EINVAL.ret());
    assert_eq!(t.call(MSYNC, &[m, 8192, 4]), 0);
    assert_eq!(u64_at(&t.stat("/tmp/mapped", 0).unwrap(), 48), 6000, "st_size");
    // Grown by ftruncate and mremap, the mapping shows the file's new bytes.
    assert_eq!(t.call(PWRITE64, &[fd, x, 3, 9000]), 3);
    let r = t.call(MREMAP, &[m, 8192, 12288, 1, 0]);
    assert!(r > 0, "mremap: {r}");
    let r = r as u64;
    t.p.mem.read(r + 9000, &mut c).unwrap();
    assert_eq!(&c, b"xyz");
    t.p.mem.write(r + 1, b"E").unwrap();
    assert_eq!(t.call(MUNMAP, &[r, 12288]), 0);
    assert_eq!(t.call(PREAD64, &[fd, SCRATCH, 5, 0]), 5);
    t.p.mem.read(SCRATCH, &mut b).unwrap();
    assert_eq!(&b, b"JEllo", "munmap keeps the last stores");
    // Read-only shared mappings of read-only fds work; writable ones do not.
    let ro = t.open("/tmp/mapped", 0) as u64;
    let q = t.call(MMAP, &[0, 4096, 1, 1, ro, 0]);
    assert!(q > 0, "{q}");
    t.p.mem.read(q as u64, &mut b).unwrap();
    assert_eq!(&b, b"JEllo");
    assert_eq!(t.call(MMAP, &[0, 4096, 3, 1, ro, 0]), EACCES.ret());
}

#[test]
fn shared_file_mappings_are_capped_by_the_map_limit() {
    let mut t = T::new();
    t.s.map_limit = 3 * 4096;
    let fd = t.open("/tmp/capped", 0o102) as u64;
    assert_eq!(t.call(FTRUNCATE, &[fd, 8192]), 0);
    let m = t.call(MMAP, &[0, 8192, 3, 1, fd, 0]);
    assert!(m > 0, "within the limit: {m}");
    // Each mapping keeps a copy in the runner's memory: past the limit, ENOMEM.
    assert_eq!(t.call(MMAP, &[0, 8192, 3, 1, fd, 0]), ENOMEM.ret());
    assert_eq!(t.call(MREMAP, &[m as u64, 8192, 16384, 1, 0]), ENOMEM.ret());
    // The refused mremap left the mapping as it was, still shared with the file.
    t.p.mem.write(m as u64, b"kept").unwrap();
    let mut b = [0u8; 4];
    assert_eq!(t.call(PREAD64, &[fd, SCRATCH, 4, 0]), 4);
    t.p.mem.read(SCRATCH, &mut b).unwrap();
    assert_eq!(&b, b"kept");
    assert_eq!(t.call(MUNMAP, &[m as u64, 8192]), 0);
    assert!(t.call(MMAP, &[0, 12288, 3, 1, fd, 0]) > 0, "room again after munmap");
}

#[test]
fn epollet_reports_a_state_once_until_it_changes() {
    let mut t = T::new();
    assert_eq!(t.call(PIPE2, &[SCRATCH, 0]), 0);
    let (r, w) = (t.p.mem.read_u32(SCRATCH).unwrap() as u64, t.p.mem.read_u32(SCRATCH + 4).unwrap() as u64);
    let ep = t.call(EPOLL_CREATE1, &[0]) as u64;
    let ev = SCRATCH + 0x100;
    t.p.mem.write(ev, &(1u32 | 1 << 31).to_le_bytes()).unwrap();
    assert_eq!(t.call(EPOLL_CTL, &[ep, 1, r, ev]), 0);
    let out = SCRATCH + 0x200;
    assert_eq!(t.call(EPOLL_PWAIT, &[ep, out, 4, 0, 0]), 0, "nothing to read");
    let s = t.str("ab");
    assert_eq!(t.call(WRITE, &[w, s, 2]), 2);
    assert_eq!(t.call(EPOLL_PWAIT, &[ep, out, 4, 0, 0]), 1, "the edge");
    assert_eq!(t.call(EPOLL_PWAIT, &[ep, out, 4, 0, 0]), 0, "no new edge while it stays readable");
    assert_eq!(t.call(READ, &[r, SCRATCH + 0x300, 2]), 2);
    assert_eq!(t.call(WRITE, &[w, s, 2]), 2);
    assert_eq!(t.call(EPOLL_PWAIT, &[ep, out, 4, 0, 0]), 1, "readable again after it was drained");
    let f = t.open("/foo.txt", 0) as u64;
    assert_eq!(t.call(EPOLL_CTL, &[ep, 1, f, ev]), EPERM.ret(), "a regular file");
}
