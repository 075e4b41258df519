/* Real sleeping: nanosleep, clock_nanosleep (relative and absolute), usleep, about 200 ms in
 * all, checked against CLOCK_MONOTONIC; a pthread_cond_timedwait of 50 ms that must time
 * out; a sleep in a thread while main waits in pthread_join. Prints no timings; exits 0. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static const char *ok(int b) { return b ? "ok" : "FAILED"; }

static void *nap(void *arg) {
    struct timespec d = {0, 30 * 1000000};
    nanosleep(&d, 0);
    return arg;
}

int main(void) {
    long long t0 = now_ns(CLOCK_MONOTONIC);
    struct timespec d = {0, 50 * 1000000};
    int r1 = nanosleep(&d, 0);
    long long t1 = now_ns(CLOCK_MONOTONIC);
    int r2 = clock_nanosleep(CLOCK_MONOTONIC, 0, &d, 0);
    long long t2 = now_ns(CLOCK_MONOTONIC);
    struct timespec abs;
    clock_gettime(CLOCK_MONOTONIC, &abs);
    abs.tv_nsec += 50 * 1000000;
    if (abs.tv_nsec >= 1000000000) {
        abs.tv_sec++;
        abs.tv_nsec -= 1000000000;
    }
    int r3 = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, 0);
    long long t3 = now_ns(CLOCK_MONOTONIC);
    int r4 = usleep(50 * 1000);
    long long t4 = now_ns(CLOCK_MONOTONIC);
    printf("nanosleep 50 ms: %s\n", ok(r1 == 0 && t1 - t0 >= 50000000LL));
    printf("clock_nanosleep relative 50 ms: %s\n", ok(r2 == 0 && t2 - t1 >= 50000000LL));
    printf("clock_nanosleep absolute: %s\n", ok(r3 == 0 && t3 >= abs.tv_sec * 1000000000LL + abs.tv_nsec));
    printf("usleep 50 ms: %s\n", ok(r4 == 0 && t4 - t3 >= 50000000LL));
    printf("%s\n", t4 - t0 >= 200000000LL ? "slept ok" : "slept too little");
    printf("not absurdly long: %s\n", ok(t4 - t0 < 20000000000LL));

    struct timespec zero = {0, 0};
    printf("nanosleep 0: %s\n", ok(nanosleep(&zero, 0) == 0));
    struct timespec bad = {0, 1000000000};
    errno = 0;
    printf("nanosleep with tv_nsec 1e9: %s\n", ok(nanosleep(&bad, 0) == -1 && errno == EINVAL));

    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long long before = now_ns(CLOCK_MONOTONIC);
    until.tv_nsec += 50 * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&m);
    int e = pthread_cond_timedwait(&c, &m, &until);
    pthread_mutex_unlock(&m);
    long long waited = now_ns(CLOCK_MONOTONIC) - before;
    printf("pthread_cond_timedwait 50 ms: %s\n", e == ETIMEDOUT ? "ETIMEDOUT" : "did not time out");
    printf("timedwait waited long enough: %s\n", ok(waited >= 45000000LL));

    pthread_t t;
    void *r = 0;
    long long j0 = now_ns(CLOCK_MONOTONIC);
    pthread_create(&t, 0, nap, (void *)1L);
    pthread_join(t, &r);
    printf("join waited for a sleeping thread: %s\n", ok(r == (void *)1L && now_ns(CLOCK_MONOTONIC) - j0 >= 30000000LL));
    return 0;
}
