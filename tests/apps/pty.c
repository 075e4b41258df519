/* Pseudo-terminals: posix_openpt/grantpt/unlockpt/ptsname, a locked slave (EIO), the
 * /dev/pts listing, and a child that makes the slave its controlling terminal (setsid +
 * TIOCSCTTY; ttyname, /dev/tty) and reads lines in canonical mode while the parent types at the master:
 * echo with ICRNL/ONLCR, VERASE, VKILL, VEOF, a ^C that kills a grandchild in the
 * foreground group and one the child catches, a window size change (SIGWINCH), and then
 * EIO at the master once the slave is closed by all, and the hangup of a slave whose
 * master closes. Only the parent prints, and only what is deterministic; exits 0. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static const char *yes(int b) { return b ? "yes" : "no"; }

/* Control characters as \r \n \b or \xNN. */
static void escape(char *out, size_t cap, const char *in, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\r') o += (size_t)snprintf(out + o, cap - o, "\\r");
        else if (c == '\n') o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (c == '\b') o += (size_t)snprintf(out + o, cap - o, "\\b");
        else if (c < 32 || c >= 127) o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else out[o++] = (char)c;
    }
    out[o] = 0;
}

/* The child's reports go through the pty itself: "[child] ...\n". */
static void report(int s, const char *fmt, ...) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "[child] ");
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    for (int done = 0; done < n;) {
        ssize_t w = write(s, buf + done, (size_t)(n - done));
        if (w <= 0) _exit(20);
        done += (int)w;
    }
}

static int count(const char *hay, size_t n, const char *needle) {
    int c = 0;
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0) c++;
    return c;
}

/* Reads the master until `reports` child reports have arrived whole, then prints all of
 * it (echo included) under `what`. */
static void collect(int m, const char *what, int reports) {
    static char buf[8192];
    size_t len = 0;
    char out[16384];
    while (count(buf, len, "[child]") < reports || len < 2 || memcmp(buf + len - 2, "\r\n", 2) != 0) {
        /* Bounded: a report that never comes is a failure that says what did come. */
        struct pollfd p = {.fd = m, .events = POLLIN};
        if (poll(&p, 1, 30000) == 0) {
            escape(out, sizeof out, buf, len);
            printf("%s: no more after 30 s; had \"%s\"\n", what, out);
            exit(1);
        }
        ssize_t r = read(m, buf + len, sizeof buf - len - 1);
        if (r <= 0) {
            printf("%s: master read failed: %s\n", what, r == 0 ? "end of file" : strerror(errno));
            exit(1);
        }
        len += (size_t)r;
    }
    escape(out, sizeof out, buf, len);
    printf("%s: \"%s\"\n", what, out);
    fflush(stdout);
}

static void type(int m, const char *s) {
    if (write(m, s, strlen(s)) != (ssize_t)strlen(s)) {
        printf("master write failed: %s\n", strerror(errno));
        exit(1);
    }
}

static void list_pts(const char *when) {
    DIR *d = opendir("/dev/pts");
    if (!d) {
        printf("/dev/pts %s: %s\n", when, strerror(errno));
        return;
    }
    char names[16][256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 16)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    printf("/dev/pts %s:", when);
    for (int i = 0; i < n; i++) printf(" %s", names[i]);
    printf("\n");
}

static volatile sig_atomic_t got;
static void on_signal(int sig) { got = sig; }

/* Waits for `sig` (blocked until now, so none is missed), with a handler. */
static void wait_for(int sig) {
    sigset_t none;
    sigemptyset(&none);
    got = 0;
    while (got != sig) sigsuspend(&none);
}

static void catch_blocked(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(sig, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

static void child(int m, const char *name) {
    close(m);
    catch_blocked(SIGINT);
    catch_blocked(SIGWINCH);
    setsid();
    int s = open(name, O_RDWR | O_NOCTTY);
    if (s < 0) _exit(10);
    int r = ioctl(s, TIOCSCTTY, 0);
    /* (Not tcgetsid: qemu-user, the reference, does not pass TIOCGSID on.) */
    report(s, "TIOCSCTTY %d, session leader %s, foreground is mine %s, isatty %d", r, yes(getsid(0) == getpid()),
           yes(tcgetpgrp(s) == getpid()), isatty(s));
    struct termios t;
    tcgetattr(s, &t);
    report(s, "iflag %#o oflag %#o cflag %#o lflag %#o VERASE %d VKILL %d VEOF %d VINTR %d VMIN %d", (unsigned)t.c_iflag,
           (unsigned)t.c_oflag, (unsigned)t.c_cflag, (unsigned)t.c_lflag, t.c_cc[VERASE], t.c_cc[VKILL], t.c_cc[VEOF],
           t.c_cc[VINTR], t.c_cc[VMIN]);
    struct winsize ws;
    ioctl(s, TIOCGWINSZ, &ws);
    report(s, "winsize %dx%d", ws.ws_row, ws.ws_col);
    char *tn = ttyname(s);
    int tty = open("/dev/tty", O_RDWR);
    if (tty < 0) report(s, "open /dev/tty: %s", strerror(errno));
    else report(tty, "ttyname %s; this came through /dev/tty", tn ? tn : strerror(errno));
    close(tty);
    char buf[256], esc[1024];
    for (int i = 0; i < 5; i++) {
        ssize_t n = read(s, buf, sizeof buf);
        escape(esc, sizeof esc, buf, n > 0 ? (size_t)n : 0);
        report(s, "read %d: %s", (int)n, esc);
    }
    int fl = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, fl | O_NONBLOCK);
    ssize_t n = read(s, buf, sizeof buf);
    report(s, "nonblocking read with nothing typed: %d %s", (int)n, n < 0 ? strerror(errno) : "");
    fcntl(s, F_SETFL, fl);
    struct pollfd p = {.fd = s, .events = POLLIN};
    int ready = poll(&p, 1, -1);
    int avail = -1;
    ioctl(s, FIONREAD, &avail);
    n = read(s, buf, sizeof buf);
    report(s, "poll %d revents POLLIN %s, FIONREAD %d, read %d", ready, yes(p.revents & POLLIN), avail, (int)n);
    /* A grandchild in a group of its own, made the foreground: ^C kills it. It reads the
     * terminal only once it is the foreground: a read from a background group would stop
     * it with SIGTTIN (Linux does; the reference sometimes hung on exactly that). */
    int fg[2];
    if (pipe(fg) != 0) _exit(11);
    pid_t g = fork();
    if (g == 0) {
        setpgid(0, 0);
        /* Default first: a ^C already pending kills it as it unblocks. */
        signal(SIGINT, SIG_DFL);
        close(fg[1]);
        if (read(fg[0], buf, 1) != 1) _exit(12);
        close(fg[0]);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (;;)
            if (read(s, buf, sizeof buf) <= 0) pause();
    }
    setpgid(g, g);
    signal(SIGTTOU, SIG_IGN);
    tcsetpgrp(s, g);
    close(fg[0]);
    if (write(fg[1], "f", 1) != 1) _exit(13);
    close(fg[1]);
    report(s, "the grandchild is the foreground: %s", yes(tcgetpgrp(s) == g));
    int st = 0;
    waitpid(g, &st, 0);
    report(s, "grandchild: %s %d", WIFSIGNALED(st) ? "killed by signal" : "exited", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    tcsetpgrp(s, getpid());
    report(s, "foreground again: %s; waiting for ^C", yes(tcgetpgrp(s) == getpid()));
    wait_for(SIGINT);
    report(s, "caught SIGINT: %s", yes(got == SIGINT));
    report(s, "waiting for SIGWINCH");
    wait_for(SIGWINCH);
    ioctl(s, TIOCGWINSZ, &ws);
    report(s, "caught SIGWINCH: %s, winsize %dx%d", yes(got == SIGWINCH), ws.ws_row, ws.ws_col);
    _exit(7);
}

int main(void) {
    struct stat st;
    int r = stat("/dev/ptmx", &st);
    printf("/dev/ptmx: %s, char device %s, %u,%u\n", r == 0 ? "present" : strerror(errno), yes(r == 0 && S_ISCHR(st.st_mode)),
           major(st.st_rdev), minor(st.st_rdev));
    list_pts("at the start");
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0) {
        printf("posix_openpt: %s\n", strerror(errno));
        return 1;
    }
    printf("grantpt %d\n", grantpt(m));
    char name[64];
    snprintf(name, sizeof name, "%s", ptsname(m));
    printf("ptsname %s, master isatty %d\n", name, isatty(m));
    int locked = open(name, O_RDWR | O_NOCTTY);
    printf("slave open while locked: %s\n", locked < 0 ? strerror(errno) : "opened");
    printf("unlockpt %d\n", unlockpt(m));
    list_pts("with one pty");
    struct winsize ws;
    ioctl(m, TIOCGWINSZ, &ws);
    printf("master winsize %dx%d\n", ws.ws_row, ws.ws_col);

    fflush(stdout);
    pid_t c = fork();
    if (c == 0) child(m, name);
    collect(m, "set up", 4);
    type(m, "hello\r");
    collect(m, "hello", 1);
    type(m, "abx\x7f" "c\r");
    collect(m, "erase", 1);
    type(m, "junk\x15ok\r");
    collect(m, "kill", 1);
    type(m, "tail\x04");
    collect(m, "eof ends a line", 1);
    type(m, "\x04");
    collect(m, "eof at a line start", 2);
    type(m, "xyz\r");
    collect(m, "poll", 2);
    type(m, "\x03");
    collect(m, "^C to the grandchild", 2);
    type(m, "\x03");
    collect(m, "^C caught", 2);
    ws.ws_row = 40;
    ws.ws_col = 100;
    ioctl(m, TIOCSWINSZ, &ws);
    collect(m, "resize", 1);
    int status = 0;
    waitpid(c, &status, 0);
    printf("child: %s %d\n", WIFEXITED(status) ? "exited" : "killed by signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    struct pollfd p = {.fd = m, .events = POLLIN};
    poll(&p, 1, 0);
    printf("master poll after the slave closed: POLLHUP %s\n", yes(p.revents & POLLHUP));
    char buf[64];
    ssize_t n = read(m, buf, sizeof buf);
    printf("master read after the slave closed: %d %s\n", (int)n, n < 0 ? strerror(errno) : "");

    /* A second pty: the slave hangs up when the master closes. */
    int m2 = posix_openpt(O_RDWR | O_NOCTTY);
    grantpt(m2);
    unlockpt(m2);
    char name2[64];
    snprintf(name2, sizeof name2, "%s", ptsname(m2));
    int s2 = open(name2, O_RDWR | O_NOCTTY);
    printf("second pty %s, slave isatty %d\n", name2, isatty(s2));
    list_pts("with two ptys");
    close(m2);
    list_pts("after the second master closed");
    n = read(s2, buf, sizeof buf);
    printf("hung-up slave read: %d\n", (int)n);
    n = write(s2, "x", 1);
    printf("hung-up slave write: %d %s\n", (int)n, n < 0 ? strerror(errno) : "");
    struct termios t;
    r = tcgetattr(s2, &t);
    printf("hung-up slave tcgetattr: %d %s\n", r, r < 0 ? strerror(errno) : "");
    close(s2);
    close(m);
    list_pts("at the end");
    return 0;
}
