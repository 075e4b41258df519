//! A thread's user registers, saved out of and restored into a unicorn CPU: what a
//! context switch between guest threads (or a fork into a new CPU) moves.

use anyhow::{anyhow, Result};
use unicorn_engine::{RegisterARM64, Unicorn};

/// x0..x30, sp, pc, NZCV, TPIDR_EL0, FPCR, FPSR and the 32 SIMD registers.
#[derive(Clone)]
pub struct Regs {
    pub x: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    nzcv: u64,
    pub tpidr: u64,
    fpcr: u64,
    fpsr: u64,
    q: Box<[[u8; 16]; 32]>,
}

fn x_reg(i: usize) -> i32 {
    // X0..X28 are consecutive in unicorn's numbering; X29 and X30 come before them.
    match i {
        29 => RegisterARM64::X29 as i32,
        30 => RegisterARM64::X30 as i32,
        _ => RegisterARM64::X0 as i32 + i as i32,
    }
}

fn q_reg(i: usize) -> i32 {
    RegisterARM64::Q0 as i32 + i as i32
}

impl Regs {
    /// The registers as the shim's signal frames hold them.
    pub fn to_user(&self) -> musl_shim::sigframe::UserRegs {
        musl_shim::sigframe::UserRegs {
            x: self.x,
            sp: self.sp,
            pc: self.pc,
            pstate: self.nzcv,
            fpsr: self.fpsr as u32,
            fpcr: self.fpcr as u32,
            v: *self.q,
        }
    }

    pub fn set_user(&mut self, u: &musl_shim::sigframe::UserRegs) {
        self.x = u.x;
        self.sp = u.sp;
        self.pc = u.pc;
        self.nzcv = u.pstate & 0xf000_0000;
        self.fpsr = u64::from(u.fpsr);
        self.fpcr = u64::from(u.fpcr);
        *self.q = u.v;
    }

    pub fn save<D>(uc: &Unicorn<'_, D>) -> Result<Regs> {
        let r = |id: i32| uc.reg_read(id).map_err(|e| anyhow!("reading register {id}: {e:?}"));
        let mut x = [0u64; 31];
        for (i, v) in x.iter_mut().enumerate() {
            *v = r(x_reg(i))?;
        }
        let mut q = Box::new([[0u8; 16]; 32]);
        for (i, v) in q.iter_mut().enumerate() {
            let b = uc.reg_read_long(q_reg(i)).map_err(|e| anyhow!("reading q{i}: {e:?}"))?;
            v.copy_from_slice(&b[..16]);
        }
        Ok(Regs {
            x,
            sp: r(RegisterARM64::SP as i32)?,
            pc: r(RegisterARM64::PC as i32)?,
            nzcv: r(RegisterARM64::NZCV as i32)?,
            tpidr: r(RegisterARM64::TPIDR_EL0 as i32)?,
            fpcr: r(RegisterARM64::FPCR as i32)?,
            fpsr: r(RegisterARM64::FPSR as i32)?,
            q,
        })
    }

    pub fn restore<D>(&self, uc: &mut Unicorn<'_, D>) -> Result<()> {
        let w = |uc: &mut Unicorn<'_, D>, id: i32, v: u64| uc.reg_write(id, v).map_err(|e| anyhow!("writing register {id}: {e:?}"));
        for (i, v) in self.x.iter().enumerate() {
            w(uc, x_reg(i), *v)?;
        }
        for (i, v) in self.q.iter().enumerate() {
            uc.reg_write_long(q_reg(i), v).map_err(|e| anyhow!("writing q{i}: {e:?}"))?;
        }
        w(uc, RegisterARM64::SP as i32, self.sp)?;
        w(uc, RegisterARM64::PC as i32, self.pc)?;
        w(uc, RegisterARM64::NZCV as i32, self.nzcv)?;
        w(uc, RegisterARM64::TPIDR_EL0 as i32, self.tpidr)?;
        w(uc, RegisterARM64::FPCR as i32, self.fpcr)?;
        w(uc, RegisterARM64::FPSR as i32, self.fpsr)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicorn_engine::{Arch, Mode};

    /// Every register a switch moves must come back as written (a register unicorn
    /// ignored would leak one thread's state into another).
    #[test]
    fn registers_round_trip() {
        let mut a = Unicorn::new(Arch::ARM64, Mode::LITTLE_ENDIAN).unwrap();
        let mut r = Regs::save(&a).unwrap();
        for (i, x) in r.x.iter_mut().enumerate() {
            *x = 0x1000 + i as u64;
        }
        r.sp = 0x7000;
        r.pc = 0x8000;
        r.nzcv = 0x6000_0000;
        r.tpidr = 0x1234_5678;
        r.fpcr = 0x0300_0000;
        r.fpsr = 0x0800_0000;
        for (i, q) in r.q.iter_mut().enumerate() {
            *q = [i as u8; 16];
        }
        r.restore(&mut a).unwrap();
        let b = Regs::save(&a).unwrap();
        assert_eq!(b.x, r.x);
        assert_eq!((b.sp, b.pc, b.nzcv, b.tpidr, b.fpcr, b.fpsr), (r.sp, r.pc, r.nzcv, r.tpidr, r.fpcr, r.fpsr));
        assert_eq!(b.q, r.q);
    }
}
