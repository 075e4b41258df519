/* Processes: fork with wait4/waitpid statuses (exit, SIGKILL from the parent, abort), pid
 * and ppid consistency, a pipe carrying 192 KiB from a child, a child with the pipe
 * dup2'ed onto stdout that execve's /echoer, and vfork + _exit. Prints only deterministic
 * facts (no pids); exits 5. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yes(int b) { return b ? "yes" : "no"; }

static void status(const char *what, int st) {
    if (WIFEXITED(st))
        printf("%s: exited with %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d (%s)\n", what, WTERMSIG(st),
               WTERMSIG(st) == SIGKILL ? "SIGKILL" : WTERMSIG(st) == SIGABRT ? "SIGABRT" : "other");
    else
        printf("%s: other status %#x\n", what, st);
}

static pid_t xfork(void) {
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
        printf("fork failed: %s\n", strerror(errno));
        exit(1);
    }
    return p;
}

static int read_full(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0) return -1;
        got += r;
    }
    return 0;
}

#define PIPE_BYTES (192 * 1024 + 123)

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    setvbuf(stdout, 0, _IOLBF, 0);
    pid_t me = getpid();
    int st;

    /* 1. exit(7), reaped with wait4 (and its rusage). */
    pid_t c = xfork();
    if (c == 0) _exit(7);
    struct rusage ru;
    pid_t w = wait4(c, &st, 0, &ru);
    printf("wait4 returned the child: %s\n", yes(w == c));
    status("child 1", st);

    /* 2. pids: the child reports getpid/getppid through a pipe. */
    int p[2];
    if (pipe2(p, O_CLOEXEC)) { printf("pipe2 failed\n"); return 1; }
    c = xfork();
    if (c == 0) {
        pid_t ids[2] = {getpid(), getppid()};
        write(p[1], ids, sizeof ids);
        _exit(0);
    }
    pid_t ids[2] = {0, 0};
    int got = read_full(p[0], ids, sizeof ids) == 0;
    close(p[0]);
    close(p[1]);
    waitpid(c, &st, 0);
    printf("child reported its ids: %s\n", yes(got));
    printf("child pid == fork's return: %s\n", yes(ids[0] == c));
    printf("child pid != parent pid: %s\n", yes(ids[0] != me));
    printf("child ppid == parent pid: %s\n", yes(ids[1] == me));
    printf("parent pid unchanged: %s\n", yes(getpid() == me));

    /* 3. A child that waits forever, killed by the parent. */
    int ready[2];
    pipe(ready);
    c = xfork();
    if (c == 0) {
        close(ready[0]);
        write(ready[1], "r", 1);
        for (;;) pause();
    }
    close(ready[1]);
    char b;
    read(ready[0], &b, 1);
    close(ready[0]);
    printf("waitpid WNOHANG on a running child: %d\n", waitpid(c, &st, WNOHANG));
    printf("kill(child, SIGKILL): %d\n", kill(c, SIGKILL));
    w = waitpid(c, &st, 0);
    printf("waitpid returned the child: %s\n", yes(w == c));
    status("child 3", st);

    /* 4. abort(). */
    c = xfork();
    if (c == 0) abort();
    waitpid(c, &st, 0);
    status("child 4", st);

    /* 5. 192 KiB through a pipe, more than its buffer: the writer blocks until the reader
     * drains it; EOF once the writer is gone. */
    if (pipe2(p, O_CLOEXEC)) { printf("pipe2 failed\n"); return 1; }
    c = xfork();
    if (c == 0) {
        close(p[0]);
        static unsigned char buf[PIPE_BYTES];
        for (int i = 0; i < PIPE_BYTES; i++) buf[i] = (unsigned char)(i * 7 + i / 251);
        size_t off = 0;
        while (off < PIPE_BYTES) {
            size_t n = PIPE_BYTES - off < 5000 ? PIPE_BYTES - off : 5000;
            ssize_t r = write(p[1], buf + off, n);
            if (r <= 0) _exit(2);
            off += r;
        }
        _exit(0);
    }
    close(p[1]);
    unsigned long total = 0, sum = 0;
    unsigned char buf[4096];
    ssize_t r;
    while ((r = read(p[0], buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < r; i++) sum = (sum * 31 + buf[i]) % 1000000007;
        total += r;
    }
    printf("pipe: read %lu bytes, checksum %lu, then %s\n", total, sum, r == 0 ? "EOF" : "an error");
    printf("pipe: read after EOF: %zd\n", read(p[0], buf, sizeof buf));
    close(p[0]);
    waitpid(c, &st, 0);
    status("writer", st);

    /* 6. A write to a pipe with no reader: EPIPE, SIGPIPE ignored. */
    signal(SIGPIPE, SIG_IGN);
    pipe(p);
    close(p[0]);
    errno = 0;
    r = write(p[1], "x", 1);
    printf("write without a reader: %zd, %s\n", r, errno == EPIPE ? "EPIPE" : "other");
    close(p[1]);
    signal(SIGPIPE, SIG_DFL);

    /* 7. dup2 the pipe onto stdout, then execve /echoer. */
    pipe(p);
    c = xfork();
    if (c == 0) {
        close(p[0]);
        dup2(p[1], 1);
        close(p[1]);
        char *av[] = {"echoer", "hello", "from", "exec", 0};
        char *ev[] = {"FROM=procs", 0};
        execve("/echoer", av, ev);
        printf("execve failed: %s\n", strerror(errno));
        _exit(127);
    }
    close(p[1]);
    char out[512];
    size_t n = 0;
    while (n < sizeof out - 1 && (r = read(p[0], out + n, sizeof out - 1 - n)) > 0) n += r;
    out[n] = 0;
    close(p[0]);
    waitpid(c, &st, 0);
    printf("exec'd child wrote: [%.*s]\n", (int)(n && out[n - 1] == '\n' ? n - 1 : n), out);
    status("exec'd child", st);

    /* 8. execve of a missing file fails in the child with ENOENT. */
    c = xfork();
    if (c == 0) {
        char *av[] = {"nothing", 0};
        execve("/no/such/program", av, av + 1);
        _exit(errno == ENOENT ? 42 : 43);
    }
    waitpid(c, &st, 0);
    status("execve of a missing file", st);

    /* 9. vfork + _exit: the parent resumes after the child exits. */
    fflush(stdout);
    c = vfork();
    if (c == 0) _exit(11);
    w = waitpid(c, &st, 0);
    printf("vfork child reaped: %s\n", yes(w == c && c > 0));
    status("vfork child", st);

    /* 10. No children left. */
    errno = 0;
    w = wait(&st);
    printf("wait with no children: %d, %s\n", w, errno == ECHILD ? "ECHILD" : "other");
    return 5;
}
