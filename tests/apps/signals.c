/* Signal handlers: SA_SIGINFO with siginfo fields, a handler on an alternate stack,
 * masks and sigpending, SA_RESETHAND, a handler that changes FP state, SIGCHLD from
 * exiting children, a signal interrupting a blocked read (EINTR) and one restarting it
 * (SA_RESTART), and a default-fatal signal at the end. Deterministic; killed by SIGTERM. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1, got_usr2, chld, alarm_hits;
static volatile int info_ok, on_alt;
static char altstack[65536];

static void usr1(int sig, siginfo_t *si, void *uc) {
    got_usr1++;
    info_ok = sig == SIGUSR1 && si->si_signo == SIGUSR1 && si->si_pid == getpid() && uc != NULL;
    /* FP state of the interrupted code must survive a handler that uses FP. */
    volatile double d = 1.0;
    for (int i = 0; i < 10; i++) d = d * 1.5 + 0.25;
    (void)d;
}

static void usr2(int sig) {
    (void)sig;
    char probe;
    on_alt = (uintptr_t)&probe >= (uintptr_t)altstack && (uintptr_t)&probe < (uintptr_t)altstack + sizeof altstack;
    got_usr2++;
}

static void on_chld(int sig) { (void)sig; chld++; }
static void on_alarm(int sig) { (void)sig; alarm_hits++; }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);

    double before = 3.25;
    raise(SIGUSR1);
    printf("raise: handler ran %d time(s), siginfo ok: %s, fp kept: %s\n", (int)got_usr1, info_ok ? "yes" : "no",
           before * 2 == 6.5 ? "yes" : "no");

    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = usr2;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigaction(SIGUSR2, &sa, NULL);
    kill(getpid(), SIGUSR2);
    printf("kill: handler ran %d time(s), on the alternate stack: %s\n", (int)got_usr2, on_alt ? "yes" : "no");
    struct sigaction old;
    sigaction(SIGUSR2, NULL, &old);
    printf("SA_RESETHAND: back to default: %s\n", old.sa_handler == SIG_DFL ? "yes" : "no");

    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    sigpending(&pend);
    printf("blocked: pending %s, handler ran %d time(s)\n", sigismember(&pend, SIGUSR1) ? "yes" : "no", (int)got_usr1);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("unblocked: handler ran %d time(s)\n", (int)got_usr1);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sigaction(SIGCHLD, &sa, NULL);
    for (int i = 0; i < 3; i++) {
        pid_t p = fork();
        if (p == 0) _exit(i);
        int st;
        waitpid(p, &st, 0);
    }
    printf("SIGCHLD: %d of 3\n", (int)chld);

    /* A blocked read interrupted: without SA_RESTART it fails with EINTR. */
    int fds[2];
    pipe(fds);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    pid_t waker = fork();
    if (waker == 0) {
        usleep(100000);
        kill(getppid(), SIGALRM);
        usleep(100000);
        write(fds[1], "x", 1);
        _exit(0);
    }
    char c;
    ssize_t n = read(fds[0], &c, 1);
    printf("read without SA_RESTART: %s, handler ran %d time(s)\n", n < 0 && errno == EINTR ? "EINTR" : "data", (int)alarm_hits);
    n = read(fds[0], &c, 1);
    printf("then: %zd byte(s)\n", n);
    waitpid(waker, NULL, 0);

    /* With SA_RESTART the read goes on and gets the byte. */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    waker = fork();
    if (waker == 0) {
        usleep(100000);
        kill(getppid(), SIGALRM);
        usleep(100000);
        write(fds[1], "y", 1);
        _exit(0);
    }
    n = read(fds[0], &c, 1);
    printf("read with SA_RESTART: %zd byte(s) '%c', handler ran %d time(s)\n", n, n == 1 ? c : '?', (int)alarm_hits);
    waitpid(waker, NULL, 0);

    printf("now SIGTERM by default\n");
    kill(getpid(), SIGTERM);
    printf("not reached\n");
    return 0;
}
