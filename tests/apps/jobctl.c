/* Terminal job control and VMIN/VTIME on a pty. A child L leads a session whose
 * controlling terminal is the pty's slave; its child B, in a group of its own, reads the
 * terminal from the background (SIGTTIN stops it; L sees WUNTRACED, hands it the
 * terminal, continues it: WCONTINUED), then B's children C.. show SIGTTOU for a TOSTOP
 * write, the same with SIGTTOU ignored, SIGTTIN caught (EINTR) and blocked (EIO); L, now
 * in an orphaned background group, gets EIO; ^Z stops B; and B's raw reads follow VMIN
 * and VTIME. Everyone reports through a pipe, in an order their waits fix; only the
 * parent prints, and it types at the master when asked ("need ..."). Exits 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int rep = -1;

static void say(const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    if (write(rep, buf, (size_t)n) != n) _exit(30);
}

static const char *err(long r) { return r >= 0 ? "ok" : errno == EIO ? "EIO" : errno == EINTR ? "EINTR" : strerror(errno); }

static void status(const char *who, int st) {
    if (WIFSTOPPED(st)) say("%s stopped by signal %d", who, WSTOPSIG(st));
    else if (WIFCONTINUED(st)) say("%s continued", who);
    else if (WIFSIGNALED(st)) say("%s killed by signal %d", who, WTERMSIG(st));
    else say("%s exited %d", who, WEXITSTATUS(st));
}

static void wait_for(pid_t p, const char *who, int options) {
    int st;
    if (waitpid(p, &st, options) != p) { say("%s: waitpid %s", who, strerror(errno)); _exit(31); }
    status(who, st);
}

static volatile sig_atomic_t caught;
static void on_sig(int sig) { caught = sig; }

/* A child of B in a group of its own that runs `body` on the terminal. */
static void in_background(int s, const char *who, void (*body)(int)) {
    pid_t c = fork();
    if (c == 0) {
        setpgid(0, 0);
        body(s);
        _exit(0);
    }
    setpgid(c, c);
    wait_for(c, who, WUNTRACED);
    int st;
    if (waitpid(c, &st, WNOHANG) == 0) {
        kill(c, SIGKILL);
        wait_for(c, who, 0);
    }
}

static void tostop_write(int s) { say("C write: %s", err(write(s, "x", 1))); }
static void ignored_write(int s) {
    signal(SIGTTOU, SIG_IGN);
    say("C write with SIGTTOU ignored: %s", err(write(s, "y", 1)));
}
static void caught_read(int s) {
    struct sigaction sa = {0};
    sa.sa_handler = on_sig;
    sigaction(SIGTTIN, &sa, 0);
    char b[8];
    long r = read(s, b, sizeof b);
    say("C read with SIGTTIN caught: %s, handler ran: %s", err(r), caught == SIGTTIN ? "yes" : "no");
}
static void blocked_read(int s) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTTIN);
    sigprocmask(SIG_BLOCK, &set, 0);
    char b[8];
    say("C read with SIGTTIN blocked: %s", err(read(s, b, sizeof b)));
}

static void raw_read(int s, int min, int time, const char *need) {
    struct termios t;
    tcgetattr(s, &t);
    t.c_lflag &= ~(unsigned)(ICANON | ECHO);
    t.c_cc[VMIN] = (cc_t)min;
    t.c_cc[VTIME] = (cc_t)time;
    tcsetattr(s, TCSANOW, &t);
    if (need) say("need %s", need);
    char b[16];
    long r = read(s, b, sizeof b);
    say("B raw read, VMIN %d VTIME %d: %ld", min, time, r);
}

static void b_main(int s) {
    setpgid(0, 0);
    char buf[64];
    long n = read(s, buf, sizeof buf - 1); /* stopped by SIGTTIN until L continues it */
    buf[n > 0 ? n : 0] = 0;
    say("B read %ld: %.*s", n, n > 0 ? (int)n - 1 : 0, buf);
    struct termios t;
    tcgetattr(s, &t);
    t.c_lflag |= TOSTOP;
    tcsetattr(s, TCSANOW, &t);
    in_background(s, "C (TOSTOP write)", tostop_write);
    in_background(s, "C (SIGTTOU ignored)", ignored_write);
    in_background(s, "C (SIGTTIN caught)", caught_read);
    in_background(s, "C (SIGTTIN blocked)", blocked_read);
    say("need ^Z");
    n = read(s, buf, sizeof buf - 1); /* ^Z stops B here; after SIGCONT it reads on */
    say("B read after ^Z: %ld", n);
    raw_read(s, 0, 0, 0);
    raw_read(s, 0, 1, 0);
    raw_read(s, 3, 0, "xyz");
    raw_read(s, 5, 2, "ab");
    _exit(0);
}

static void l_main(const char *name) {
    setsid();
    int s = open(name, O_RDWR);
    if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0) _exit(32);
    pid_t b = fork();
    if (b == 0) b_main(s);
    setpgid(b, b);
    wait_for(b, "B", WUNTRACED);
    say("L tcsetpgrp B: %s", err(tcsetpgrp(s, b)));
    struct termios t;
    tcgetattr(s, &t);
    char c;
    say("L, orphaned background: tcsetattr %s, read %s, write %s", err(tcsetattr(s, TCSANOW, &t)), err(read(s, &c, 1)), err(write(s, "z", 1)));
    kill(b, SIGCONT);
    wait_for(b, "B", WCONTINUED);
    say("need hello");
    wait_for(b, "B", WUNTRACED);
    kill(b, SIGCONT);
    wait_for(b, "B", WCONTINUED);
    say("need bye");
    wait_for(b, "B", 0);
    _exit(0);
}

int main(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) || unlockpt(m)) return 1;
    char name[64];
    if (ptsname_r(m, name, sizeof name)) return 2;
    int p[2];
    if (pipe(p)) return 3;
    pid_t l = fork();
    if (l == 0) {
        close(p[0]);
        rep = p[1];
        l_main(name);
    }
    close(p[1]);
    char line[256];
    size_t len = 0;
    for (;;) {
        char c;
        long r = read(p[0], &c, 1);
        if (r <= 0) break;
        if (c != '\n') {
            if (len < sizeof line - 1) line[len++] = c;
            continue;
        }
        line[len] = 0;
        len = 0;
        printf("%s\n", line);
        fflush(stdout);
        const char *in = !strcmp(line, "need hello") ? "hello\n" : !strcmp(line, "need ^Z") ? "\x1a" : !strcmp(line, "need bye") ? "bye\n" : !strcmp(line, "need xyz") ? "xyz" : !strcmp(line, "need ab") ? "ab" : 0;
        if (in && write(m, in, strlen(in)) != (long)strlen(in)) return 4;
    }
    int st;
    if (waitpid(l, &st, 0) != l) return 5;
    printf("L: %s %d\n", WIFEXITED(st) ? "exited" : "killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    return 0;
}
