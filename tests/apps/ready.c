/* Readiness beyond poll: select (pselect6) over pipes and sockets, with and without a
 * timeout, and timerfds (one-shot, periodic, absolute, read blocking, in poll, select and
 * epoll, disarmed), and timeouts that run on while unrelated I/O goes on. Prints only what Linux makes deterministic; exit 0 when all passed. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failed;

static void check(int ok, const char *what) {
    printf("%s: %s\n", what, ok ? "ok" : "FAILED");
    if (!ok) failed = 1;
}

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

int main(void) {
    int p[2];
    pipe(p);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);

    /* select: nothing readable, a pipe's write end writable; a zero timeout. */
    fd_set r, w;
    FD_ZERO(&r); FD_ZERO(&w);
    FD_SET(p[0], &r); FD_SET(sv[0], &r); FD_SET(p[1], &w);
    struct timeval tv = {0, 0};
    int n = select(sv[1] + 1, &r, &w, NULL, &tv);
    check(n == 1 && FD_ISSET(p[1], &w) && !FD_ISSET(p[0], &r) && !FD_ISSET(sv[0], &r), "select: only the write end is ready");

    /* select with a timeout and nothing ready: 0, sets cleared, about the time asked. */
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    tv.tv_sec = 0; tv.tv_usec = 60000;
    long long t0 = now_ms();
    n = select(p[0] + 1, &r, NULL, NULL, &tv);
    long long took = now_ms() - t0;
    check(n == 0 && !FD_ISSET(p[0], &r) && took >= 50, "select: times out with its set cleared");

    /* select sees a socket's data. */
    write(sv[1], "x", 1);
    FD_ZERO(&r);
    FD_SET(p[0], &r); FD_SET(sv[0], &r);
    n = select(sv[1] + 1, &r, NULL, NULL, NULL);
    check(n == 1 && FD_ISSET(sv[0], &r) && !FD_ISSET(p[0], &r), "select: the socket is readable");
    char c;
    read(sv[0], &c, 1);

    /* select on a closed fd: EBADF. */
    int dead = dup(p[0]);
    close(dead);
    FD_ZERO(&r);
    FD_SET(dead, &r);
    tv.tv_sec = 0; tv.tv_usec = 0;
    n = select(dead + 1, &r, NULL, NULL, &tv);
    check(n == -1 && errno == EBADF, "select: a closed fd is EBADF");

    /* A one-shot timerfd: not ready before, a blocking read waits for it and gives 1. */
    int tf = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {{0, 0}, {0, 40 * 1000000}};
    long long armed = now_ms();
    timerfd_settime(tf, 0, &its, NULL);
    struct pollfd pf = {tf, POLLIN, 0};
    check(poll(&pf, 1, 0) == 0, "timerfd: not ready at once");
    struct itimerspec cur;
    timerfd_gettime(tf, &cur);
    check(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 40 * 1000000, "timerfd: gettime shows the time left");
    uint64_t count = 0;
    n = read(tf, &count, sizeof count);
    /* Counted from the arming: a loaded machine may reach the read late. */
    took = now_ms() - armed;
    check(n == 8 && count == 1 && took >= 39, "timerfd: a blocking read waits for the expiry");
    timerfd_gettime(tf, &cur);
    check(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0, "timerfd: disarmed after a one-shot expiry");

    /* Periodic: poll wakes for it; the count covers every period that passed. */
    its.it_interval.tv_nsec = 10 * 1000000;
    its.it_value.tv_nsec = 10 * 1000000;
    timerfd_settime(tf, 0, &its, NULL);
    pf.revents = 0;
    n = poll(&pf, 1, 2000);
    check(n == 1 && (pf.revents & POLLIN), "timerfd: poll wakes at the expiry");
    usleep(55 * 1000);
    read(tf, &count, sizeof count);
    check(count >= 5, "timerfd: a periodic timer counts every period");

    /* epoll_wait wakes for it too, and select. */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 77};
    epoll_ctl(ep, EPOLL_CTL_ADD, tf, &ev);
    struct epoll_event got;
    n = epoll_wait(ep, &got, 1, 2000);
    check(n == 1 && got.data.u32 == 77, "timerfd: epoll_wait wakes at the expiry");
    read(tf, &count, sizeof count);
    FD_ZERO(&r);
    FD_SET(tf, &r);
    n = select(tf + 1, &r, NULL, NULL, NULL);
    check(n == 1 && FD_ISSET(tf, &r), "timerfd: select wakes at the expiry");

    /* Disarmed: a non-blocking read is EAGAIN; an absolute time in the past fires at once. */
    struct itimerspec off = {{0, 0}, {0, 0}};
    timerfd_settime(tf, 0, &off, NULL);
    int tn = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    n = read(tn, &count, sizeof count);
    check(n == -1 && errno == EAGAIN, "timerfd: disarmed, a non-blocking read is EAGAIN");
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    struct itimerspec past = {{0, 0}, {real.tv_sec - 1, 0}};
    timerfd_settime(tn, TFD_TIMER_ABSTIME, &past, NULL);
    n = read(tn, &count, sizeof count);
    check(n == 8 && count == 1, "timerfd: an absolute realtime in the past fires at once");
    check(timerfd_create(CLOCK_MONOTONIC, 0x4000) == -1 && errno == EINVAL, "timerfd: unknown flags are EINVAL");

    /* A timeout counts from the call, however often unrelated I/O (a child writing into
     * another pipe every 20 ms, killed after both checks) happens meanwhile. */
    int busy[2], idle[2];
    pipe(busy);
    pipe(idle);
    pid_t child = fork();
    if (child == 0) {
        struct timespec tick = {0, 20 * 1000000};
        for (int i = 0; i < 500; i++) {
            write(busy[1], "x", 1);
            nanosleep(&tick, NULL);
        }
        _exit(0);
    }
    struct pollfd ip = {idle[0], POLLIN, 0};
    t0 = now_ms();
    n = poll(&ip, 1, 200);
    took = now_ms() - t0;
    check(n == 0 && took >= 200 && took < 1500, "poll: the timeout runs on under unrelated I/O");
    int ep2 = epoll_create1(0);
    struct epoll_event iev = {EPOLLIN, {.u32 = 5}};
    epoll_ctl(ep2, EPOLL_CTL_ADD, idle[0], &iev);
    t0 = now_ms();
    n = epoll_wait(ep2, &iev, 1, 200);
    took = now_ms() - t0;
    check(n == 0 && took >= 200 && took < 1500, "epoll_wait: the timeout runs on under unrelated I/O");
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);

    printf("ready: %s\n", failed ? "FAILED" : "all ok");
    return failed;
}
