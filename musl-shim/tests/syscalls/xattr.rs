//! Extended attributes: none are kept, answered as on a filesystem without xattr support.

use super::{SCRATCH, T};
use musl_shim::errno::*;
use musl_shim::sys::nr::*;

#[test]
fn xattrs_are_unsupported_after_the_file_is_found() {
    let mut t = T::new();
    let fd = t.open("/tmp/x", 0o101) as u64;
    let (path, name, value) = (t.str("/tmp/x"), t.str("user.test"), t.str("v"));
    let missing = t.str("/tmp/none");
    for nr in [SETXATTR, LSETXATTR] {
        assert_eq!(t.call(nr, &[path, name, value, 1, 0]), EOPNOTSUPP.ret());
        assert_eq!(t.call(nr, &[missing, name, value, 1, 0]), ENOENT.ret());
        assert_eq!(t.call(nr, &[path, name, value, 1, 4]), EINVAL.ret(), "unknown flags first");
    }
    assert_eq!(t.call(FSETXATTR, &[fd, name, value, 1, 1]), EOPNOTSUPP.ret());
    assert_eq!(t.call(FSETXATTR, &[99, name, value, 1, 0]), EBADF.ret());
    for nr in [GETXATTR, LGETXATTR, REMOVEXATTR, LREMOVEXATTR] {
        assert_eq!(t.call(nr, &[path, name, SCRATCH, 16]), EOPNOTSUPP.ret());
        assert_eq!(t.call(nr, &[missing, name, SCRATCH, 16]), ENOENT.ret());
    }
    for nr in [FGETXATTR, FREMOVEXATTR] {
        assert_eq!(t.call(nr, &[fd, name, SCRATCH, 16]), EOPNOTSUPP.ret());
        assert_eq!(t.call(nr, &[99, name, SCRATCH, 16]), EBADF.ret());
    }
    let empty = t.str("");
    assert_eq!(t.call(GETXATTR, &[path, empty, SCRATCH, 16]), ERANGE.ret(), "an empty name");
    // listxattr names nothing.
    assert_eq!(t.call(LISTXATTR, &[path, SCRATCH, 64]), 0);
    assert_eq!(t.call(LLISTXATTR, &[path, 0, 0]), 0);
    assert_eq!(t.call(FLISTXATTR, &[fd, SCRATCH, 64]), 0);
    assert_eq!(t.call(LISTXATTR, &[missing, SCRATCH, 64]), ENOENT.ret());
    assert_eq!(t.call(FLISTXATTR, &[99, SCRATCH, 64]), EBADF.ret());
}
