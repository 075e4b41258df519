//! Extended attributes: the tree keeps none, so every file answers as one on a Linux
//! filesystem without xattr support does. A missing path or a bad fd fails first
//! (`ENOENT`, `EBADF`); then `listxattr` lists nothing (0 bytes: Linux's answer when no
//! handler and no security module name an attribute), while `setxattr`, `getxattr` and
//! `removexattr` fail with `EOPNOTSUPP`, which CPython's `shutil.copystat` and
//! `test.support.can_xattr` take as "no xattrs here".

use super::fs::{fd_arg, lookup, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use crate::errno::*;
use crate::platform::Platform;
use crate::Shim;

/// `XATTR_CREATE | XATTR_REPLACE`: setxattr's only flags.
const SET_FLAGS: u64 = 1 | 2;
/// Longest attribute name (XATTR_NAME_MAX) and value (XATTR_SIZE_MAX).
const NAME_MAX: usize = 255;
const SIZE_MAX: u64 = 65536;

/// Which file an xattr call names: a path (following a last symlink or not) or an fd.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Path,
    LinkPath,
    Fd,
}

/// Checks that the call's file exists: ENOENT, ENOTDIR, ELOOP, EBADF as Linux gives them.
fn check_target<E: Platform>(s: &Shim<'_>, env: &mut E, t: Target, arg: u64) -> SysResult<()> {
    match t {
        Target::Fd => s.fds.get(fd_arg(arg)).map(|_| ()),
        Target::Path => lookup(s, env, AT_FDCWD as u64, arg, 0).map(|_| ()),
        Target::LinkPath => lookup(s, env, AT_FDCWD as u64, arg, AT_SYMLINK_NOFOLLOW).map(|_| ()),
    }
}

/// Checks an attribute name: ERANGE when it is empty or longer than [`NAME_MAX`].
fn check_name<E: Platform>(env: &mut E, at: u64) -> SysResult<()> {
    match env.read_cstr(at, NAME_MAX) {
        Ok(n) if n.is_empty() => Err(ERANGE),
        Ok(_) => Ok(()),
        Err(ENAMETOOLONG) => Err(ERANGE),
        Err(e) => Err(e),
    }
}

/// `setxattr(file, name, value, size, flags)`: the arguments are checked before the file
/// is looked up, as Linux copies them in first.
pub fn setxattr<E: Platform>(s: &mut Shim<'_>, env: &mut E, t: Target, a: [u64; 6]) -> SysResult<u64> {
    if a[4] & !SET_FLAGS != 0 {
        return Err(EINVAL);
    }
    check_name(env, a[1])?;
    if a[3] > SIZE_MAX {
        return Err(E2BIG);
    }
    check_target(s, env, t, a[0])?;
    Err(EOPNOTSUPP)
}

/// `getxattr(file, name, value, size)` and `removexattr(file, name)` (no attribute to
/// read or remove).
pub fn getxattr<E: Platform>(s: &mut Shim<'_>, env: &mut E, t: Target, a: [u64; 6]) -> SysResult<u64> {
    check_target(s, env, t, a[0])?;
    check_name(env, a[1])?;
    Err(EOPNOTSUPP)
}

/// `listxattr(file, list, size)`: no names, so 0 bytes.
pub fn listxattr<E: Platform>(s: &mut Shim<'_>, env: &mut E, t: Target, a: [u64; 6]) -> SysResult<u64> {
    check_target(s, env, t, a[0])?;
    Ok(0)
}
