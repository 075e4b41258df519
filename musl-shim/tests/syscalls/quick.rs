//! `Shim::quick_syscall`: the identity calls answered without the steps around a syscall
//! give what `Shim::syscall` gives, and are refused whenever work is due after a call.

use super::pty::{O_NOCTTY, O_RDWR};
use super::{SCRATCH, T};
use musl_shim::sys::nr::*;
use musl_shim::{Action, GuestMemory};

const SET: u64 = SCRATCH + 0x400;
const IT: u64 = SCRATCH + 0x500;
const SIGUSR1: u64 = 10;
const SIGSTOP: u64 = 19;
const SIGCONT: u64 = 18;
const IDENTITY: [u64; 7] = [GETPID, GETPPID, GETTID, GETUID, GETEUID, GETGID, GETEGID];

impl T {
    /// The quick answer to each identity call, checked against the full path's.
    fn quick_matches_full(&mut self, what: &str) {
        let tid = self.s.tasks.cur;
        for nr in IDENTITY {
            let quick = self.s.quick_syscall(tid, nr);
            assert_eq!(quick, Some(self.call(nr, &[])), "{what}: syscall {nr}");
        }
    }
    fn quick(&self, nr: u64) -> Option<i64> {
        self.s.quick_syscall(self.s.tasks.cur, nr)
    }
    fn sigmask(&mut self, how: u64, sig: u64) {
        self.p.mem.write_u64(SET, 1 << (sig - 1)).unwrap();
        assert_eq!(self.call(RT_SIGPROCMASK, &[how, SET, 0, 8]), 0);
    }
}

#[test]
fn identity_calls_answered_quickly_are_what_the_full_path_answers() {
    let mut t = T::with_tasks();
    assert_eq!(t.quick(GETPID), None, "before the first syscall the clock has not started");
    assert_eq!(t.call(SET_TID_ADDRESS, &[0]), 1);
    t.quick_matches_full("the first process");
    for nr in [SCHED_YIELD, GETPGID, UNAME, WRITE, GETRANDOM, 9999] {
        assert_eq!(t.quick(nr), None, "syscall {nr} is not an identity call");
    }
    assert_eq!(t.s.quick_syscall(t.s.tasks.cur + 1, GETPID), None, "not the current thread");
    assert_eq!(t.call(SETGID, &[42]), 0);
    assert_eq!(t.call(SETUID, &[7]), 0);
    t.quick_matches_full("after setuid/setgid");
    assert_eq!(t.quick(GETUID), Some(7));
    let child = t.fork();
    t.run_as(child);
    t.quick_matches_full("a forked child");
    assert_eq!(t.quick(GETPPID), Some(1));
    assert_eq!(t.quick(GETPID), Some(i64::from(child)));
}

#[test]
fn the_quick_path_steps_aside_whenever_work_is_due_after_a_call() {
    let mut t = T::with_tasks();
    assert_eq!(t.call(GETPID, &[]), 1);
    assert!(t.quick(GETPPID).is_some());
    // A caught signal: blocked it waits and changes nothing; unblocked it must be taken.
    t.catch(SIGUSR1);
    t.sigmask(0, SIGUSR1);
    assert_eq!(t.call(KILL, &[1, SIGUSR1]), 0);
    assert!(t.quick(GETPPID).is_some(), "a blocked signal is not due");
    t.sigmask(1, SIGUSR1);
    assert!(t.s.signal_ready());
    assert_eq!(t.quick(GETPPID), None, "an unblocked pending signal is due");
    // The same with a signal for the thread alone (tgkill), which the process does not show.
    let mut t = T::with_tasks();
    assert_eq!(t.call(GETPID, &[]), 1);
    t.catch(SIGUSR1);
    t.sigmask(0, SIGUSR1);
    assert_eq!(t.call(TGKILL, &[1, 1, SIGUSR1]), 0);
    assert!(t.quick(GETPPID).is_some(), "a blocked thread signal is not due");
    t.sigmask(1, SIGUSR1);
    assert_eq!(t.s.proc_.pending, 0, "the signal is the thread's");
    assert_eq!(t.quick(GETPPID), None, "an unblocked signal pending on the thread is due");
    // A signal for another thread of the process waits for that thread.
    let mut t = T::with_tasks();
    assert_eq!(t.call(GETPID, &[]), 1);
    t.catch(SIGUSR1);
    let Action::Spawned(sp) = t.action(CLONE, &[0x10f00, 0x8000, 0, 0, 0]) else { panic!("a thread") };
    assert_eq!(t.call(TGKILL, &[1, u64::from(sp.child), SIGUSR1]), 0);
    assert!(t.quick(GETPPID).is_some(), "the signal is not the caller's");
    t.run_as(sp.child);
    assert_eq!(t.quick(GETPPID), None, "the thread's own signal is due");
    // A stopped process runs its call only once continued.
    let mut t = T::with_tasks();
    assert_eq!(t.call(GETPID, &[]), 1);
    let child = t.fork();
    assert_eq!(t.call(KILL, &[u64::from(child), SIGSTOP]), 0);
    t.run_as(child);
    assert_eq!(t.quick(GETPID), None, "a stopped process");
    t.run_as(1);
    assert_eq!(t.call(KILL, &[u64::from(child), SIGCONT]), 0);
    t.run_as(child);
    assert!(t.quick(GETPID).is_some(), "continued");
    // An armed interval timer fires after calls.
    let mut t = T::with_tasks();
    assert_eq!(t.call(GETPID, &[]), 1);
    for (o, v) in [(0u64, 0u64), (8, 0), (16, 5), (24, 0)] {
        t.p.mem.write_u64(IT + o, v).unwrap();
    }
    assert_eq!(t.call(SETITIMER, &[1, IT, 0]), 0);
    assert_eq!(t.quick(GETPID), None, "an armed ITIMER_VIRTUAL");
    // A pty's signals go out after calls.
    let mut t = T::with_tasks();
    assert_eq!(t.call(GETPID, &[]), 1);
    assert!(t.open("/dev/ptmx", O_RDWR | O_NOCTTY) >= 0);
    assert_eq!(t.quick(GETPID), None, "an app with a pty");
}
