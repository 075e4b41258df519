//! Linux errno values (asm-generic, as aarch64 uses) and the shim's result type.

/// A Linux errno, positive. Syscalls return `-errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

/// What every syscall handler returns: a non-negative value or an errno.
pub type SysResult<T = u64> = Result<T, Errno>;

macro_rules! errnos {
    ($($name:ident = $v:expr),* $(,)?) => { $(pub const $name: Errno = Errno($v);)* };
}

errnos! {
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, ENOEXEC = 8,
    EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16,
    EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENFILE = 23,
    EMFILE = 24, ENOTTY = 25, EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30, EMLINK = 31,
    EPIPE = 32, ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36, ENOSYS = 38, ENOTEMPTY = 39, ELOOP = 40,
    EOVERFLOW = 75, ENOTSOCK = 88, EDESTADDRREQ = 89, EMSGSIZE = 90, EPROTOTYPE = 91,
    ENOPROTOOPT = 92, EPROTONOSUPPORT = 93, ESOCKTNOSUPPORT = 94, ENOTSUP = 95,
    EAFNOSUPPORT = 97, EADDRINUSE = 98, EADDRNOTAVAIL = 99, ENETUNREACH = 101,
    ECONNRESET = 104, EISCONN = 106, ENOTCONN = 107, ETIMEDOUT = 110, ECONNREFUSED = 111,
    EINPROGRESS = 115,
}

/// Not a Linux errno the app ever sees: an fd object's "this would block" (Linux's
/// internal ERESTARTSYS). The dispatcher turns it into a blocked thread that retries the
/// syscall when an I/O object changes, or into `EAGAIN` for an `O_NONBLOCK` file.
pub const EBLOCK: Errno = Errno(512);
/// `EOPNOTSUPP` is `ENOTSUP` on Linux.
pub const EOPNOTSUPP: Errno = ENOTSUP;

impl Errno {
    /// The value a syscall returns for this error: `-errno`.
    pub fn ret(self) -> i64 {
        -i64::from(self.0)
    }
}
