//! Threads, processes, pipes, signals and sleeping: test apps that use them run under the
//! Linux reference (qemu-aarch64-static, chrooted into the image's rootfs) and under
//! `selkie run --emulate` on the same OCI image; stdout and exit status must be identical.
//! A fork bomb and a thread storm must end the way they end on Linux (the reference runs
//! them as nobody with RLIMIT_NPROC), and must not stop a healthy app running beside them,
//! emulated and, when seL4 is installed, booted in one image.

use selkie_tests::apps::{binfmt_aarch64, busybox_arm64, c_app, go_app, Link, SIGNALS_EXPECTED, SIGTHREADS_EXPECTED};
use selkie_tests::compare::{Built, Case};
use selkie_tests::sel4;
use selkie_tests::tools::{output_within, skip_without, Timed};

/// Most heap the manifest allows (1 GiB): the Go runtime reserves large address ranges.
const HUGE_HEAP: [&str; 2] = ["--config.label", "org.selkie.app.heap_pages=262144"];
/// RLIMIT_NPROC for bombs under the reference (qemu-user takes two tasks per process).
const BOMB_NPROC: u32 = 64;

fn tools() -> bool {
    !skip_without(&["umoci", "qemu-aarch64-static", "aarch64-linux-musl-gcc"])
}

fn lines(out: &str, want: &[&str]) {
    for l in want {
        assert!(out.lines().any(|x| x == *l), "the reference did not print {l:?}:\n{out}");
    }
}

#[test]
fn threads_match_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("threads", Link::Static) else { return };
    let Some(o) = Case::new("threads", &bin).compare() else { return };
    assert_eq!(o.status, 3, "{}", o.stdout);
    lines(
        &o.stdout,
        &[
            "counter: 400000 (want 400000)",
            "join values sum: 604 (want 604)",
            "queue: 2000 items, sum 2001000 (want 2000, 2001000)",
            "barrier: 4 of 4 threads saw every slot and their own __thread value",
            "barrier: serial threads: 1",
            "detached thread ran: yes",
        ],
    );
}

#[test]
fn threads_static_pie_match_linux() {
    if !tools() {
        return;
    }
    // TLS in a static-PIE: the thread pointer and __thread offsets after relocation.
    let Some(bin) = c_app("threads", Link::StaticPie) else { return };
    let Some(o) = Case::new("threads", &bin).compare() else { return };
    assert_eq!(o.status, 3, "{}", o.stdout);
}

fn procs_case() -> Option<Case> {
    if !tools() || !binfmt_aarch64() {
        return None;
    }
    let procs = c_app("procs", Link::Static)?;
    let echoer = c_app("echoer", Link::Static)?;
    Some(Case::new("procs", &procs).file("/echoer", &echoer))
}

#[test]
fn fork_wait_kill_pipes_and_exec_match_linux() {
    let Some(case) = procs_case() else { return };
    let Some(o) = case.compare() else { return };
    assert_eq!(o.status, 5, "{}", o.stdout);
    lines(
        &o.stdout,
        &[
            "child 1: exited with 7",
            "child ppid == parent pid: yes",
            "child pid == fork's return: yes",
            "child 3: killed by signal 9 (SIGKILL)",
            "child 4: killed by signal 6 (SIGABRT)",
            "pipe: read 196731 bytes, checksum 121079952, then EOF",
            "write without a reader: -1, EPIPE",
            "exec'd child: exited with 9",
            "execve of a missing file: exited with 42",
            "vfork child: exited with 11",
            "wait with no children: -1, ECHILD",
        ],
    );
    assert!(o.stdout.contains("exec'd child wrote: [echoer: hello from exec\nechoer: FROM=procs]\n"), "{}", o.stdout);
}

#[test]
fn sleeping_and_timed_waits_match_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = c_app("sleeper", Link::Static) else { return };
    let Some(o) = Case::new("sleeper", &bin).compare() else { return };
    assert_eq!(o.status, 0, "{}", o.stdout);
    assert!(!o.stdout.contains("FAILED"), "{}", o.stdout);
    lines(&o.stdout, &["slept ok", "pthread_cond_timedwait 50 ms: ETIMEDOUT"]);
    // Real sleeping, not a clock pushed forward: 200 ms of sleeps, a 50 ms timed wait and a
    // 30 ms nap in a thread take that long on the host's clock too.
    assert!(o.elapsed >= std::time::Duration::from_millis(280), "selkie run --emulate took only {:?}", o.elapsed);
}

fn bomb(name: &str) -> Option<Case> {
    if !tools() {
        return None;
    }
    Some(Case::new(name, &c_app(name, Link::Static)?).nproc(BOMB_NPROC))
}

#[test]
fn a_fork_bomb_ends_like_on_linux() {
    let Some(case) = bomb("forkbomb") else { return };
    let Some(o) = case.compare() else { return };
    assert_eq!(o.status, 0, "{}", o.stdout);
    lines(&o.stdout, &["fork failed with EAGAIN", "killed every child: yes", "reaped every child: yes", "fork after cleanup: ok"]);
}

#[test]
fn a_thread_storm_ends_like_on_linux() {
    let Some(case) = bomb("threadbomb") else { return };
    let Some(o) = case.compare() else { return };
    assert_eq!(o.status, 0, "{}", o.stdout);
    lines(&o.stdout, &["pthread_create failed with EAGAIN", "joined every thread: yes", "pthread_create after cleanup: ok"]);
}

/// Runs every case's image at once under `selkie run --emulate`; each must do what Linux did.
fn side_by_side(cases: &[(Case, Built)]) {
    let runs: Vec<Timed> = std::thread::scope(|s| {
        let handles: Vec<_> = cases.iter().map(|(c, b)| s.spawn(move || output_within(&mut c.selkie_command(b), c.timeout))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((case, built), got) in cases.iter().zip(&runs) {
        case.check(built, got);
    }
}

#[test]
fn bombs_do_not_stop_a_healthy_app_emulated() {
    let (Some(fb), Some(tb)) = (bomb("forkbomb"), bomb("threadbomb")) else { return };
    let Some(healthy) = c_app("threads", Link::Static) else { return };
    let healthy = Case::new("threads", &healthy);
    let mut cases = Vec::new();
    for c in [fb, tb, healthy] {
        let Some(b) = c.build() else { return };
        cases.push((c, b));
    }
    assert_eq!(cases[2].1.want.status, 3);
    side_by_side(&cases);
}

#[test]
fn go_app_matches_linux() {
    if !tools() {
        return;
    }
    let Some(bin) = go_app() else { return };
    let Some(o) = Case::new("goapp", &bin).config(&HUGE_HEAP).compare() else { return };
    assert_eq!(o.status, 4, "{}", o.stdout);
    lines(
        &o.stdout,
        &[
            "waitgroup: sum of squares 0..99 = 328350",
            "pipeline: sum of squares 1..1000 = 333833500",
            "mutex: counter = 80000 workers [0 1 2 3 4 5 6 7]",
            "select: timed out",
            "select: waited at least 30ms: true",
            "select: received hello",
            "sleep: at least 50ms: true",
            "gate: 1000 goroutines released",
            "runtime: linux arm64",
        ],
    );
}

const SCRIPT: &str = "echo a b c | tr a-z A-Z; for i in 1 2 3; do echo $i; done | wc -l; x=$(echo sub); echo $x; exit 3";

#[test]
fn busybox_shell_pipelines_match_linux() {
    if !tools() || !binfmt_aarch64() {
        return;
    }
    let Some(bin) = busybox_arm64() else { return };
    let mut case = Case::new("busybox", &bin).cmd(&["sh", "-c", SCRIPT]);
    for applet in ["sh", "echo", "tr", "wc", "cat", "true"] {
        case = case.symlink(&format!("/bin/{applet}"), "/busybox");
    }
    let Some(o) = case.compare() else { return };
    assert_eq!(o.status, 3, "{}", o.stdout);
    assert_eq!(o.stdout, "A B C\n3\nsub\n");
}

/// The same on seL4: the bombs and a healthy app booted in one image. The healthy app
/// must print exactly what it prints on Linux and exit normally; each bomb must end as
/// on Linux.
#[test]
fn bombs_do_not_stop_a_healthy_app_on_sel4() {
    if !tools() || !sel4::available() {
        return;
    }
    let (Some(fb), Some(tb)) = (bomb("forkbomb"), bomb("threadbomb")) else { return };
    let Some(healthy) = c_app("hello", Link::Static) else { return };
    let healthy = Case::new("hello", &healthy).cmd(&["hello_world", "test"]);
    let mut built = Vec::new();
    for c in [&fb, &tb, &healthy] {
        let Some(b) = c.build() else { return };
        built.push(b);
    }
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image.elf");
    let refs: Vec<String> = built.iter().map(|b| b.image.reference()).collect();
    sel4::pack(&refs, &image);
    let c = sel4::boot(&image, 300);
    assert!(c.finished, "no final line within 300 s:\n{}", c.text);
    for (name, b) in ["forkbomb", "threadbomb", "hello"].iter().zip(&built) {
        assert!(c.has_in_order(&b.want.stdout), "{name}'s output is not on the console in order:\n{}", c.text);
        assert_eq!(c.status(name), Some(b.want.status), "{name}: {:?}", c.reports());
    }
    assert!(c.reports().iter().any(|l| l.starts_with("[selkie] all 3 apps done: 3 exited")), "{:?}", c.reports());
}


#[test]
fn signal_handlers_match_linux() {
    if !tools() {
        return;
    }
    // Handlers with siginfo, an alternate stack, masks and sigpending, SA_RESETHAND,
    // SIGCHLD, EINTR versus SA_RESTART on a blocked read, then SIGTERM by default.
    let Some(bin) = c_app("signals", Link::Static) else { return };
    let Some(o) = Case::new("signals", &bin).compare() else { return };
    assert_eq!(o.status, 128 + 15, "{}", o.stdout);
    lines(&o.stdout, &SIGNALS_EXPECTED);
}

#[test]
fn signals_reach_the_right_thread_like_linux() {
    if !tools() {
        return;
    }
    // pthread_kill (tgkill) to one thread, kill to the process while main blocks it (a
    // thread in sigsuspend takes it), sigsuspend's EINTR and mask, sigpending.
    let Some(bin) = c_app("sigthreads", Link::Static) else { return };
    let Some(o) = Case::new("sigthreads", &bin).compare() else { return };
    assert_eq!(o.status, 3, "{}", o.stdout);
    assert_eq!(o.stdout.lines().collect::<Vec<_>>(), SIGTHREADS_EXPECTED, "{}", o.stdout);
}

/// The Go program booted on seL4: goroutines over threads, futexes, epoll timers, real
/// sleeping; its console output and status must be Linux's.
#[test]
fn go_app_boots_on_sel4_like_linux() {
    if !tools() || !sel4::available() {
        return;
    }
    let Some(bin) = go_app() else { return };
    let case = Case::new("goapp", &bin).config(&HUGE_HEAP);
    let Some(built) = case.build() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image.elf");
    sel4::pack(&[built.image.reference()], &image);
    let c = sel4::boot(&image, 300);
    assert!(c.finished, "no final line within 300 s:\n{}", c.text);
    assert!(c.has_in_order(&built.want.stdout), "goapp's output is not on the console in order:\n{}", c.text);
    assert_eq!(c.status("goapp"), Some(built.want.status), "{:?}", c.reports());
}
