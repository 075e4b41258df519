//! `struct stat` (asm-generic layout, as aarch64 uses) and `struct statx`.

use crate::vfs::{Ino, Kind, Ts, Vfs};

/// st_dev of the rootfs; /tmp, /dev and /proc follow (one per [`crate::vfs::Fs`]).
pub const ROOTFS_DEV: u64 = 0x803;

pub fn makedev(major: u32, minor: u32) -> u64 {
    (u64::from(major & 0xfff) << 8) | u64::from(minor & 0xff) | (u64::from(minor & !0xff) << 12)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blksize: u32,
    pub blocks: u64,
    pub atime: Ts,
    pub mtime: Ts,
    pub ctime: Ts,
}

impl Stat {
    /// The stat of an object with no node behind it (a pipe, an eventfd): one link,
    /// 4 KiB blocks, owned by root.
    pub fn synthetic(mode: u32, ino: u64, dev: u64) -> Stat {
        Stat { mode, ino, dev, nlink: 1, blksize: 4096, ..Stat::default() }
    }

    pub fn of_node(vfs: &Vfs<'_>, ino: Ino) -> Stat {
        let n = vfs.node(ino);
        let size = n.size();
        let nlink = match &n.kind {
            Kind::Dir { entries, .. } => {
                2 + entries.values().filter(|&&i| vfs.node(i).is_dir()).count() as u32
            }
            _ => n.nlink,
        };
        let rdev = match &n.kind {
            Kind::Dev(d) => {
                let (ma, mi) = d.rdev();
                makedev(ma, mi)
            }
            _ => 0,
        };
        Stat {
            dev: ROOTFS_DEV + n.fs as u64,
            ino: ino as u64 + 1,
            mode: n.mode(),
            nlink,
            uid: n.uid,
            gid: n.gid,
            rdev,
            size,
            blksize: 4096,
            blocks: size.div_ceil(4096) * 8,
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
        }
    }

    /// The 128-byte `struct stat`.
    pub fn to_bytes(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..8].copy_from_slice(&self.dev.to_le_bytes());
        b[8..16].copy_from_slice(&self.ino.to_le_bytes());
        b[16..20].copy_from_slice(&self.mode.to_le_bytes());
        b[20..24].copy_from_slice(&self.nlink.to_le_bytes());
        b[24..28].copy_from_slice(&self.uid.to_le_bytes());
        b[28..32].copy_from_slice(&self.gid.to_le_bytes());
        b[32..40].copy_from_slice(&self.rdev.to_le_bytes());
        b[48..56].copy_from_slice(&self.size.to_le_bytes());
        b[56..60].copy_from_slice(&self.blksize.to_le_bytes());
        b[64..72].copy_from_slice(&self.blocks.to_le_bytes());
        for (t, ts) in [(72, self.atime), (88, self.mtime), (104, self.ctime)] {
            b[t..t + 8].copy_from_slice(&ts.sec.to_le_bytes());
            b[t + 8..t + 12].copy_from_slice(&ts.nsec.to_le_bytes());
        }
        b
    }

    /// The 256-byte `struct statx` (all basic fields present).
    pub fn to_statx(&self) -> [u8; 256] {
        let mut b = [0u8; 256];
        b[0..4].copy_from_slice(&0x7ffu32.to_le_bytes()); // STATX_BASIC_STATS
        b[4..8].copy_from_slice(&self.blksize.to_le_bytes());
        b[16..20].copy_from_slice(&self.nlink.to_le_bytes());
        b[20..24].copy_from_slice(&self.uid.to_le_bytes());
        b[24..28].copy_from_slice(&self.gid.to_le_bytes());
        b[28..30].copy_from_slice(&(self.mode as u16).to_le_bytes());
        b[32..40].copy_from_slice(&self.ino.to_le_bytes());
        b[40..48].copy_from_slice(&self.size.to_le_bytes());
        b[48..56].copy_from_slice(&self.blocks.to_le_bytes());
        // atime, btime (the change time stands in), ctime, mtime.
        for (t, ts) in [(0x40, self.atime), (0x50, self.ctime), (0x60, self.ctime), (0x70, self.mtime)] {
            b[t..t + 8].copy_from_slice(&ts.sec.to_le_bytes());
            b[t + 8..t + 12].copy_from_slice(&ts.nsec.to_le_bytes());
        }
        let (rma, rmi) = split_dev(self.rdev);
        let (dma, dmi) = split_dev(self.dev);
        b[0x80..0x84].copy_from_slice(&rma.to_le_bytes());
        b[0x84..0x88].copy_from_slice(&rmi.to_le_bytes());
        b[0x88..0x8c].copy_from_slice(&dma.to_le_bytes());
        b[0x8c..0x90].copy_from_slice(&dmi.to_le_bytes());
        b
    }
}

fn split_dev(d: u64) -> (u32, u32) {
    (((d >> 8) & 0xfff) as u32, ((d & 0xff) | ((d >> 12) & !0xff)) as u32)
}
