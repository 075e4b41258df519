/* Interval timers, waiting for signals, CPU clocks and pipe sizes, against Linux:
 * every line is a check that prints 1 when it holds. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;

static void on_alarm(int sig) {
    (void)sig;
    alarms++;
}

static long long ns(clockid_t c) {
    struct timespec t;
    if (clock_gettime(c, &t) != 0)
        return -1;
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void check(const char *what, int ok) {
    printf("%s: %d\n", what, ok);
}

static void pipes(void) {
    int p[2];
    pipe(p);
    check("pipe default size 65536", fcntl(p[1], F_GETPIPE_SZ) == 65536);
    check("F_SETPIPE_SZ 5000 gives 8192", fcntl(p[0], F_SETPIPE_SZ, 5000) == 8192);
    check("both ends see 8192", fcntl(p[1], F_GETPIPE_SZ) == 8192);
    char buf[12288] = {0};
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    check("a full pipe takes 8192", write(p[1], buf, sizeof buf) == 8192);
    check("then EAGAIN", write(p[1], buf, 1) == -1 && errno == EAGAIN);
    check("shrinking below what is queued: EBUSY", fcntl(p[1], F_SETPIPE_SZ, 4096) == -1 && errno == EBUSY);
    check("a file is not a pipe: EBADF", fcntl(0, F_GETPIPE_SZ) == -1 && errno == EBADF);
}

static void clocks(void) {
    struct timespec t = {0, 0};
    check("clock_settime(MONOTONIC): EINVAL", clock_settime(CLOCK_MONOTONIC, &t) == -1 && errno == EINVAL);
    clockid_t c;
    check("pthread_getcpuclockid", pthread_getcpuclockid(pthread_self(), &c) == 0 && ns(c) >= 0);
    check("clock_getcpuclockid(self)", clock_getcpuclockid(getpid(), &c) == 0 && ns(c) >= 0);
    long long cpu0 = ns(CLOCK_PROCESS_CPUTIME_ID), th0 = ns(CLOCK_THREAD_CPUTIME_ID);
    struct timespec nap = {0, 300000000};
    nanosleep(&nap, 0);
    check("a sleep is not process CPU time", ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0 < 150000000);
    check("nor thread CPU time", ns(CLOCK_THREAD_CPUTIME_ID) - th0 < 150000000);
}

static void timers(void) {
    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 0}, {0, 100000}}, old;
    check("setitimer", setitimer(ITIMER_REAL, &it, 0) == 0);
    getitimer(ITIMER_REAL, &old);
    check("getitimer: armed, at most 0.1 s left", old.it_value.tv_sec == 0 && old.it_value.tv_usec > 0 && old.it_value.tv_usec <= 100000);
    pause();
    check("pause ends with SIGALRM", alarms == 1);
    getitimer(ITIMER_REAL, &old);
    check("a one-shot timer is spent", old.it_value.tv_sec == 0 && old.it_value.tv_usec == 0);
    struct itimerval every = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_REAL, &every, 0);
    while (alarms < 4)
        pause();
    it.it_value.tv_usec = 0;
    setitimer(ITIMER_REAL, &it, &old);
    check("an interval timer fires again", alarms >= 4 && old.it_interval.tv_usec == 20000);
    alarm(1);
    check("alarm(0) says what was left", alarm(0) == 1);
    check("bad which: EINVAL", getitimer(7, &old) == -1 && errno == EINVAL);
}

static void waits(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, 0);
    struct timespec zero = {0, 0}, short_ = {0, 50000000};
    check("sigtimedwait polls: EAGAIN", sigtimedwait(&set, 0, &zero) == -1 && errno == EAGAIN);
    check("sigtimedwait times out: EAGAIN", sigtimedwait(&set, 0, &short_) == -1 && errno == EAGAIN);
    kill(getpid(), SIGUSR1);
    siginfo_t info;
    check("takes a pending signal", sigtimedwait(&set, &info, &zero) == SIGUSR1 && info.si_signo == SIGUSR1);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, 0);
    struct itimerval it = {{0, 0}, {0, 30000}};
    setitimer(ITIMER_REAL, &it, 0);
    int sig = 0;
    check("sigwait takes the timer's SIGALRM", sigwait(&set, &sig) == 0 && sig == SIGALRM);
    sigprocmask(SIG_UNBLOCK, &set, 0);
}

static sem_t started;
static volatile int stop_spinning;

static void *spinner(void *arg) {
    (void)arg;
    sem_post(&started);
    while (!stop_spinning)
        getppid();
    return 0;
}

/* A thread that wakes another and then only makes syscalls must still let it run. */
static void spinning(void) {
    pthread_t t;
    sem_init(&started, 0, 0);
    pthread_create(&t, 0, spinner, 0);
    sem_wait(&started);
    stop_spinning = 1;
    check("a thread woken by a spinning one runs", pthread_join(t, 0) == 0);
}

static volatile int slept;

static void *sleeper(void *arg) {
    (void)arg;
    struct timespec t = {0, 10000000};
    nanosleep(&t, 0);
    slept = 1;
    return 0;
}

/* A thread whose sleep ran out must run though the only other one spins on syscalls
 * (for 5 s at most, so that the check fails rather than hangs). */
static void sleeping(void) {
    pthread_t t;
    pthread_create(&t, 0, sleeper, 0);
    long long end = ns(CLOCK_MONOTONIC) + 5000000000LL;
    while (!slept && ns(CLOCK_MONOTONIC) < end)
        getppid();
    check("a sleeper wakes while another thread spins on syscalls", slept);
    pthread_join(t, 0);
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    pipes();
    clocks();
    timers();
    waits();
    spinning();
    sleeping();
    return 0;
}
