//! Interval timers and waiting for signals: setitimer/getitimer, rt_sigtimedwait and
//! pidfd_send_signal.

use super::{SCRATCH, T};
use musl_shim::errno::*;
use musl_shim::sys::nr::*;
use musl_shim::task::{Event, Resume};
use musl_shim::{Action, GuestMemory};

const IT: u64 = SCRATCH + 0x200;
const OLD: u64 = SCRATCH + 0x300;
const SET: u64 = SCRATCH + 0x400;
const TS: u64 = SCRATCH + 0x500;
const SIGALRM: u64 = 14;
const SIGUSR1: u64 = 10;

fn itimerval(t: &mut T, interval_us: u64, value_us: u64) {
    for (o, v) in [(0, interval_us / 1_000_000), (8, interval_us % 1_000_000), (16, value_us / 1_000_000), (24, value_us % 1_000_000)] {
        t.p.mem.write_u64(IT + o, v).unwrap();
    }
}

fn tasks() -> T {
    let mut t = T::new();
    t.s.enable_tasks(16);
    t
}

/// Blocks `sig` for the caller.
fn block(t: &mut T, sig: u64) {
    t.p.mem.write_u64(SET, 1 << (sig - 1)).unwrap();
    assert_eq!(t.call(RT_SIGPROCMASK, &[0, SET, 0, 8]), 0);
}

#[test]
fn setitimer_arms_reads_back_and_disarms() {
    let mut t = tasks();
    itimerval(&mut t, 250_000, 2_000_000);
    assert_eq!(t.call(SETITIMER, &[0, IT, 0]), 0);
    assert_eq!(t.call(GETITIMER, &[0, OLD]), 0);
    assert_eq!(t.p.mem.read_u64(OLD + 8).unwrap(), 250_000, "interval");
    let left = t.p.mem.read_u64(OLD + 16).unwrap() * 1_000_000 + t.p.mem.read_u64(OLD + 24).unwrap();
    assert!(left > 1_900_000 && left <= 2_000_000, "{left}");
    itimerval(&mut t, 0, 0);
    assert_eq!(t.call(SETITIMER, &[0, IT, OLD]), 0);
    assert_eq!(t.p.mem.read_u64(OLD + 8).unwrap(), 250_000, "the old setting");
    assert_eq!(t.call(GETITIMER, &[0, OLD]), 0);
    assert_eq!(t.p.mem.read_u64(OLD + 16).unwrap() + t.p.mem.read_u64(OLD + 24).unwrap(), 0, "disarmed");
    assert_eq!(t.call(GETITIMER, &[3, OLD]), EINVAL.ret());
    itimerval(&mut t, 0, 1_000_000);
    t.p.mem.write_u64(IT + 24, 1_000_000).unwrap();
    assert_eq!(t.call(SETITIMER, &[0, IT, 0]), EINVAL.ret(), "usec past a second");
}

#[test]
fn itimer_real_sends_sigalrm_to_a_waiting_thread() {
    let mut t = tasks();
    block(&mut t, SIGALRM);
    itimerval(&mut t, 0, 500_000);
    assert_eq!(t.call(SETITIMER, &[0, IT, 0]), 0);
    assert!(t.s.next_deadline().is_some(), "the runner wakes for the timer");
    // sigwait(SIGALRM), with no timeout: parked until the timer fires.
    t.p.mem.write_u64(SET, 1 << (SIGALRM - 1)).unwrap();
    assert_eq!(t.s.syscall(&mut t.p, RT_SIGTIMEDWAIT, [SET, 0, 0, 8, 0, 0]), Action::Block);
    t.p.now_ns += 600_000_000;
    let now = t.p.now_ns;
    t.s.expire(now);
    assert_eq!(t.s.take_events(), vec![Event::Wake { tid: 1, resume: Resume::Retry }]);
    assert_eq!(t.call(RT_SIGTIMEDWAIT, &[SET, SCRATCH, 0, 8]), SIGALRM as i64, "taken");
    assert_eq!(t.p.mem.read_u32(SCRATCH).unwrap(), SIGALRM as u32, "si_signo");
    assert_eq!(t.s.next_deadline(), None, "a one-shot timer is spent");
}

#[test]
fn sigtimedwait_times_out_and_takes_pending_signals() {
    let mut t = tasks();
    block(&mut t, SIGUSR1);
    t.p.mem.write_u64(SET, 1 << (SIGUSR1 - 1)).unwrap();
    t.p.mem.write_u64(TS, 0).unwrap();
    t.p.mem.write_u64(TS + 8, 0).unwrap();
    assert_eq!(t.call(RT_SIGTIMEDWAIT, &[SET, 0, TS, 8]), EAGAIN.ret(), "a zero timeout polls");
    t.p.mem.write_u64(TS + 8, 1_000_000).unwrap();
    assert_eq!(t.s.syscall(&mut t.p, RT_SIGTIMEDWAIT, [SET, 0, TS, 8, 0, 0]), Action::Block);
    t.p.now_ns += 2_000_000;
    let now = t.p.now_ns;
    t.s.expire(now);
    assert_eq!(t.s.take_events(), vec![Event::Wake { tid: 1, resume: Resume::Value(EAGAIN.ret()) }]);
    assert_eq!(t.call(KILL, &[1, SIGUSR1]), 0);
    assert_eq!(t.call(RT_SIGTIMEDWAIT, &[SET, 0, TS, 8]), SIGUSR1 as i64);
    t.p.mem.write_u64(TS + 8, 0).unwrap();
    assert_eq!(t.call(RT_SIGTIMEDWAIT, &[SET, 0, TS, 8]), EAGAIN.ret(), "taken once");
    assert_eq!(t.call(RT_SIGTIMEDWAIT, &[SET, 0, TS, 4]), EINVAL.ret());
}

/// ppoll of one fd for POLLIN, not waiting: its revents.
fn poll_in(t: &mut T, fd: u64) -> u16 {
    let pfd = SCRATCH + 0x700;
    t.p.mem.write_u32(pfd, fd as u32).unwrap();
    t.p.mem.write_u32(pfd + 4, 1).unwrap();
    t.p.mem.write_u64(TS, 0).unwrap();
    t.p.mem.write_u64(TS + 8, 0).unwrap();
    assert!(t.call(PPOLL, &[pfd, 1, TS, 0, 8]) >= 0);
    (t.p.mem.read_u32(pfd + 4).unwrap() >> 16) as u16
}

#[test]
fn pidfds_signal_and_become_readable_when_their_process_ends() {
    let mut t = tasks();
    assert_eq!(t.call(PIDFD_OPEN, &[99, 0]), ESRCH.ret());
    assert_eq!(t.call(PIDFD_OPEN, &[1, 1]), EINVAL.ret());
    assert_eq!(t.call(PIDFD_OPEN, &[0, 0]), EINVAL.ret());
    let Action::Spawned(sp) = t.s.syscall(&mut t.p, CLONE, [17, 0, 0, 0, 0, 0]) else { panic!("fork") };
    let child = u64::from(sp.child);
    let fd = t.call(PIDFD_OPEN, &[child, 0]) as u64;
    assert_eq!(t.call(FCNTL, &[fd, 1]), 1, "close-on-exec");
    assert_eq!(poll_in(&mut t, fd), 0, "running");
    assert_eq!(t.call(PIDFD_SEND_SIGNAL, &[fd, 0, 0, 0]), 0, "signal 0: it is there");
    assert_eq!(t.call(PIDFD_SEND_SIGNAL, &[fd, 9, 0, 0]), 0, "SIGKILL");
    assert_eq!(poll_in(&mut t, fd), 1, "readable once it ended");
}

#[test]
fn pidfd_send_signal_takes_a_proc_directory() {
    let mut t = tasks();
    block(&mut t, SIGUSR1);
    let proc_dir = t.open("/proc/1", 0o200000) as u64;
    assert_eq!(t.call(PIDFD_SEND_SIGNAL, &[0, SIGUSR1, 0, 0]), EBADF.ret(), "not a pidfd");
    assert_eq!(t.call(PIDFD_SEND_SIGNAL, &[proc_dir, SIGUSR1, 0, 1]), EINVAL.ret(), "flags");
    assert_eq!(t.call(PIDFD_SEND_SIGNAL, &[proc_dir, SIGUSR1, 0, 0]), 0);
    t.p.mem.write_u64(SET, 1 << (SIGUSR1 - 1)).unwrap();
    assert_eq!(t.call(RT_SIGPENDING, &[SET, 8]), 0);
    assert_eq!(t.p.mem.read_u64(SET).unwrap(), 1 << (SIGUSR1 - 1), "pending on the process");
}

#[test]
fn pause_ends_with_eintr_even_under_sa_restart() {
    const SA_RESTART: u64 = 0x1000_0000;
    let mut t = tasks();
    let act = SCRATCH + 0x600;
    for (i, w) in [0x1000u64, SA_RESTART, 0, 0].iter().enumerate() {
        t.p.mem.write_u64(act + 8 * i as u64, *w).unwrap();
    }
    assert_eq!(t.call(RT_SIGACTION, &[SIGALRM, act, 0, 8]), 0);
    itimerval(&mut t, 0, 100_000);
    assert_eq!(t.call(SETITIMER, &[0, IT, 0]), 0);
    // musl's pause: ppoll(0, 0, 0, 0).
    assert_eq!(t.s.syscall(&mut t.p, PPOLL, [0; 6]), Action::Block);
    t.p.now_ns += 200_000_000;
    let now = t.p.now_ns;
    t.s.expire(now);
    assert_eq!(t.s.take_events(), vec![Event::Wake { tid: 1, resume: Resume::Value(EINTR.ret()) }]);
}
