//! Clocks: setting them, the CPU clocks and their ids, and CPU time that leaves out
//! the time a thread was parked.

use super::{SCRATCH, T};
use musl_shim::errno::*;
use musl_shim::sys::nr::*;
use musl_shim::{Action, GuestMemory};

const TS: u64 = SCRATCH + 0x100;
const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
const CLOCK_THREAD_CPUTIME_ID: u64 = 3;

/// MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) and MAKE_THREAD_CPUCLOCK(tid, ...).
fn process_clock(pid: i64) -> u64 {
    ((!pid << 3) | 2) as u64
}
fn thread_clock(tid: i64) -> u64 {
    ((!tid << 3) | 6) as u64
}

fn set_ts(t: &mut T, sec: u64, nsec: u64) {
    t.p.mem.write_u64(TS, sec).unwrap();
    t.p.mem.write_u64(TS + 8, nsec).unwrap();
}

/// The clock's time in ns.
fn now(t: &mut T, clock: u64) -> u64 {
    assert_eq!(t.call(CLOCK_GETTIME, &[clock, TS]), 0, "clock {clock:#x}");
    t.p.mem.read_u64(TS).unwrap() * 1_000_000_000 + t.p.mem.read_u64(TS + 8).unwrap()
}

#[test]
fn clocks_cannot_be_set_in_a_container() {
    let mut t = T::new();
    set_ts(&mut t, 1_700_000_000, 0);
    assert_eq!(t.call(CLOCK_SETTIME, &[CLOCK_REALTIME, TS]), EPERM.ret());
    assert_eq!(t.call(CLOCK_SETTIME, &[CLOCK_MONOTONIC, TS]), EINVAL.ret(), "not a settable clock");
    assert_eq!(t.call(CLOCK_SETTIME, &[CLOCK_PROCESS_CPUTIME_ID, TS]), EINVAL.ret());
    assert_eq!(t.call(CLOCK_SETTIME, &[process_clock(1), TS]), EPERM.ret());
    assert_eq!(t.call(CLOCK_SETTIME, &[99, TS]), EINVAL.ret());
    set_ts(&mut t, 1, 1_000_000_000);
    assert_eq!(t.call(CLOCK_SETTIME, &[CLOCK_REALTIME, TS]), EINVAL.ret(), "a bad time first");
    t.p.mem.write_u64(TS, 5).unwrap();
    t.p.mem.write_u64(TS + 8, 0).unwrap();
    assert_eq!(t.call(SETTIMEOFDAY, &[TS, 0]), EPERM.ret());
}

#[test]
fn cpu_clock_ids_name_processes_and_threads() {
    let mut t = T::new();
    assert_eq!(t.call(CLOCK_GETRES, &[process_clock(1), 0]), 0, "clock_getcpuclockid(1)");
    assert_eq!(t.call(CLOCK_GETRES, &[process_clock(0), TS]), 0, "pid 0: the caller");
    assert_eq!(t.p.mem.read_u64(TS + 8).unwrap(), 1, "1 ns resolution");
    assert_eq!(t.call(CLOCK_GETRES, &[process_clock(77), 0]), EINVAL.ret(), "no such process");
    assert_eq!(t.call(CLOCK_GETTIME, &[thread_clock(77), TS]), EINVAL.ret(), "no such thread");
    assert_eq!(t.call(CLOCK_GETTIME, &[((!1i64 << 3) | 3) as u64, TS]), EINVAL.ret(), "an fd clock");
    let a = now(&mut t, thread_clock(1));
    let b = now(&mut t, CLOCK_THREAD_CPUTIME_ID);
    let c = now(&mut t, process_clock(1));
    assert!(a <= b && b <= c, "{a} {b} {c}");
    set_ts(&mut t, 0, 1000);
    assert_eq!(t.call(CLOCK_NANOSLEEP, &[thread_clock(0), 0, TS, 0]), EINVAL.ret());
    assert_eq!(t.call(CLOCK_NANOSLEEP, &[CLOCK_THREAD_CPUTIME_ID, 0, TS, 0]), EINVAL.ret());
}

#[test]
fn cpu_time_leaves_out_sleeps() {
    let mut t = T::new();
    t.s.enable_tasks(16);
    let cpu0 = now(&mut t, CLOCK_PROCESS_CPUTIME_ID);
    let thread0 = now(&mut t, CLOCK_THREAD_CPUTIME_ID);
    let wall0 = now(&mut t, CLOCK_MONOTONIC);
    set_ts(&mut t, 1, 0);
    let slept = t.s.syscall(&mut t.p, NANOSLEEP, [TS, 0, 0, 0, 0, 0]);
    assert_eq!(slept, Action::Block);
    t.p.now_ns += 1_000_000_000;
    let at = t.p.now_ns;
    t.s.expire(at);
    assert!(!t.s.take_events().is_empty(), "the sleeper woke");
    let wall = now(&mut t, CLOCK_MONOTONIC) - wall0;
    let cpu = now(&mut t, CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    let thread = now(&mut t, CLOCK_THREAD_CPUTIME_ID);
    assert!(wall >= 1_000_000_000, "{wall}");
    assert!(cpu < 100_000, "the second asleep is not CPU time: {cpu}");
    assert!(thread - thread0 < 100_000, "{thread0} {thread}");
    // Running counts.
    t.p.now_ns += 5_000_000;
    let later = now(&mut t, CLOCK_THREAD_CPUTIME_ID);
    assert!(later >= thread + 5_000_000, "{thread} {later}");
}
