//! Running signal handlers: the aarch64 Linux signal frame (`rt_sigframe`: siginfo,
//! ucontext with the registers and an FP/SIMD record, then a frame record), built on the
//! thread's stack (or its alternate stack) from the registers its runner hands over, and
//! read back by `rt_sigreturn`.
//!
//! Layout, as arch/arm64/kernel/signal.c makes it:
//! `sp -> siginfo (128) | ucontext (uc_flags, uc_link, uc_stack, uc_sigmask, pad to 176,
//! sigcontext: fault_address, x0..x30, sp, pc, pstate, __reserved[4096] holding an
//! fpsimd_context {magic 0x46508001, size 528, fpsr, fpcr, v0..v31} and a null record)
//! | frame record (x29, x30)`.

use crate::mem::GuestMemory;
use crate::Shim;

/// The registers of a thread, as its runner saved them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRegs {
    pub x: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    /// NZCV and the other PSTATE bits user code may see.
    pub pstate: u64,
    pub fpsr: u32,
    pub fpcr: u32,
    pub v: [[u8; 16]; 32],
}

/// What delivering the current thread's pending signals did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Nothing was deliverable.
    None,
    /// A handler's frame was built: the thread resumes in the handler.
    Handler(u32),
    /// A signal with a fatal default action ends the process.
    Killed(i32),
}

/// The page every process has at [`SIGTRAMP`]: `mov x8, #139; <trap>`, the return
/// address of a handler installed without SA_RESTORER (glibc's; Linux uses its vDSO).
pub const SIGTRAMP: u64 = 0x7f_fffe_0000;
/// The trapping word a rewritten `svc #0` becomes (`udf #0x5e1c`).
pub const TRAP_WORD: u32 = 0x0000_5e1c;
/// The trampoline's code.
pub fn sigtramp_code() -> [u8; 8] {
    let mut c = [0u8; 8];
    c[..4].copy_from_slice(&0xd280_1168u32.to_le_bytes()); // mov x8, #139 (rt_sigreturn)
    c[4..].copy_from_slice(&TRAP_WORD.to_le_bytes());
    c
}

const SIGINFO: u64 = 128;
const UC_MCONTEXT: u64 = 176;
const MC_RESERVED: u64 = 288;
const FPSIMD_MAGIC: u32 = 0x4650_8001;
const FPSIMD_SIZE: u32 = 528;
/// siginfo + ucontext up to the end of __reserved.
const FRAME: u64 = SIGINFO + UC_MCONTEXT + MC_RESERVED + 4096;
const MCONTEXT: u64 = SIGINFO + UC_MCONTEXT;

pub const SA_NOCLDWAIT: u64 = 0x2;
pub const SA_SIGINFO: u64 = 0x4;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;

const UNBLOCKABLE: u64 = (1 << 8) | (1 << 18); // SIGKILL, SIGSTOP

/// Signals whose default action is to do nothing (or stop/continue, which we ignore).
pub fn default_ignored(sig: u64) -> bool {
    matches!(sig, 17 | 18 | 20 | 21 | 22 | 23 | 28)
}

impl Shim<'_> {
    /// Whether the current thread has a signal to take now (its runner then calls
    /// [`Shim::deliver_signal`] before resuming it).
    pub fn signal_ready(&self) -> bool {
        // This runs after every syscall: until some thread was given a signal of its own
        // (or a mask to restore), only the process's pending set can hold one.
        if !self.tasks.thread_signals {
            return self.proc_.pending & !self.proc_.sigmask != 0;
        }
        // One lookup of the thread.
        let t = self.tasks.threads.get(&self.tasks.cur);
        // A thread back from rt_sigsuspend has its mask to restore, signal or not.
        t.is_some_and(|t| t.suspended_mask.is_some()) || (self.proc_.pending | t.map_or(0, |t| t.pending)) & !self.proc_.sigmask != 0
    }

    /// Whether a signal for the current thread (its own or its process's) is pending and
    /// not blocked.
    pub fn signal_pending_unblocked(&self) -> bool {
        let mine = self.tasks.threads.get(&self.tasks.cur).map_or(0, |t| t.pending);
        (self.proc_.pending | mine) & !self.proc_.sigmask != 0
    }

    /// Takes the current thread's lowest pending, unblocked signal: ignored ones are
    /// dropped, a default fatal one ends the process, a handled one gets its frame on the
    /// stack and `regs` set to enter the handler. A frame that cannot be written (a bad
    /// stack) kills the process with SIGSEGV, as Linux does.
    pub fn deliver_signal<M: GuestMemory>(&mut self, mem: &mut M, regs: &mut UserRegs) -> Delivery {
        let cur = self.tasks.cur;
        loop {
            let mine = self.tasks.threads.get(&cur).map_or(0, |t| t.pending);
            let ready = (self.proc_.pending | mine) & !self.proc_.sigmask;
            if ready == 0 {
                // Back from rt_sigsuspend without a handler to run: its mask goes back.
                if let Some(m) = self.tasks.threads.get_mut(&cur).and_then(|t| t.suspended_mask.take()) {
                    self.proc_.sigmask = m;
                }
                return Delivery::None;
            }
            let sig = u64::from(ready.trailing_zeros()) + 1;
            let bit = 1u64 << (sig - 1);
            match self.tasks.threads.get_mut(&cur) {
                Some(t) if t.pending & bit != 0 => t.pending &= !bit,
                _ => self.proc_.pending &= !bit,
            }
            let act = self.proc_.sigactions[(sig - 1) as usize];
            match act[0] {
                0 if default_ignored(sig) => continue,
                0 => return Delivery::Killed(sig as i32),
                1 => continue,
                _ => {}
            }
            if self.build_frame(mem, regs, sig, act).is_err() {
                return Delivery::Killed(11);
            }
            return Delivery::Handler(sig as u32);
        }
    }

    fn build_frame<M: GuestMemory>(&mut self, mem: &mut M, regs: &mut UserRegs, sig: u64, act: [u64; 4]) -> Result<(), ()> {
        let [handler, flags, restorer, mask] = act;
        let [ss_sp, ss_flags, ss_size] = self.proc_.altstack;
        let on_alt = ss_flags & 2 == 0 && regs.sp > ss_sp && regs.sp <= ss_sp.wrapping_add(ss_size);
        let top = if flags & SA_ONSTACK != 0 && ss_flags & 2 == 0 && !on_alt { ss_sp.wrapping_add(ss_size) } else { regs.sp };
        let sp = top.wrapping_sub(FRAME + 16) & !15;
        let mut f = alloc::vec![0u8; (FRAME + 16) as usize];
        let put64 = |f: &mut [u8], at: u64, v: u64| f[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
        let put32 = |f: &mut [u8], at: u64, v: u32| f[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
        // siginfo: signo, errno, code (SI_USER), pid, uid.
        put32(&mut f, 0, sig as u32);
        put32(&mut f, 16, self.proc_.pid);
        put32(&mut f, 20, self.proc_.uid);
        // ucontext: uc_stack, uc_sigmask.
        put64(&mut f, SIGINFO + 16, ss_sp);
        put32(&mut f, SIGINFO + 24, ss_flags as u32);
        put64(&mut f, SIGINFO + 32, ss_size);
        // The mask the handler's return restores: rt_sigsuspend's caller's, if it was in it.
        let saved = self.tasks.threads.get_mut(&self.tasks.cur).and_then(|t| t.suspended_mask.take());
        put64(&mut f, SIGINFO + 40, saved.unwrap_or(self.proc_.sigmask));
        // sigcontext.
        for (i, x) in regs.x.iter().enumerate() {
            put64(&mut f, MCONTEXT + 8 + 8 * i as u64, *x);
        }
        put64(&mut f, MCONTEXT + 256, regs.sp);
        put64(&mut f, MCONTEXT + 264, regs.pc);
        put64(&mut f, MCONTEXT + 272, regs.pstate);
        let fp = MCONTEXT + MC_RESERVED;
        put32(&mut f, fp, FPSIMD_MAGIC);
        put32(&mut f, fp + 4, FPSIMD_SIZE);
        put32(&mut f, fp + 8, regs.fpsr);
        put32(&mut f, fp + 12, regs.fpcr);
        for (i, v) in regs.v.iter().enumerate() {
            let at = (fp + 16 + 16 * i as u64) as usize;
            f[at..at + 16].copy_from_slice(v);
        }
        // The frame record after the frame, for unwinders.
        put64(&mut f, FRAME, regs.x[29]);
        put64(&mut f, FRAME + 8, regs.x[30]);
        mem.write(sp, &f).map_err(|_| ())?;

        let mut new_mask = self.proc_.sigmask | mask;
        if flags & SA_NODEFER == 0 {
            new_mask |= 1 << (sig - 1);
        }
        self.proc_.sigmask = new_mask & !UNBLOCKABLE;
        if flags & SA_RESETHAND != 0 {
            self.proc_.sigactions[(sig - 1) as usize] = [0; 4];
        }
        regs.x[0] = sig;
        regs.x[1] = sp;
        regs.x[2] = sp + SIGINFO;
        regs.x[29] = sp + FRAME;
        regs.x[30] = if flags & SA_RESTORER != 0 { restorer } else { SIGTRAMP };
        regs.sp = sp;
        regs.pc = handler;
        Ok(())
    }

    /// `rt_sigreturn`: restores the registers and the signal mask from the frame at
    /// `regs.sp`. `Err` for a frame that cannot be read (the process gets SIGSEGV).
    pub fn sigreturn<M: GuestMemory>(&mut self, mem: &mut M, regs: &mut UserRegs) -> Result<(), ()> {
        let sp = regs.sp;
        let mut f = alloc::vec![0u8; FRAME as usize];
        mem.read(sp, &mut f).map_err(|_| ())?;
        let get64 = |at: u64| u64::from_le_bytes(f[at as usize..at as usize + 8].try_into().unwrap());
        let get32 = |at: u64| u32::from_le_bytes(f[at as usize..at as usize + 4].try_into().unwrap());
        for i in 0..31 {
            regs.x[i] = get64(MCONTEXT + 8 + 8 * i as u64);
        }
        regs.sp = get64(MCONTEXT + 256);
        regs.pc = get64(MCONTEXT + 264);
        // Only the condition flags come back: a handler may not raise its privileges.
        regs.pstate = get64(MCONTEXT + 272) & 0xf000_0000;
        let fp = MCONTEXT + MC_RESERVED;
        if get32(fp) == FPSIMD_MAGIC {
            regs.fpsr = get32(fp + 8);
            regs.fpcr = get32(fp + 12);
            for (i, v) in regs.v.iter_mut().enumerate() {
                let at = (fp + 16 + 16 * i as u64) as usize;
                v.copy_from_slice(&f[at..at + 16]);
            }
        }
        self.proc_.sigmask = get64(SIGINFO + 40) & !UNBLOCKABLE;
        Ok(())
    }
}
