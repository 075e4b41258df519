/* Time and random checker: prints only deterministic facts about clocks and entropy. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void) {
    struct timespec a, b, res;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int mono_ok = 1;
    for (int i = 0; i < 1000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (ns(b) < ns(a)) mono_ok = 0;
        a = b;
    }
    printf("monotonic never goes back: %d\n", mono_ok);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    printf("realtime after 2020: %d\n", rt.tv_sec > 1577836800);
    struct timeval tv;
    gettimeofday(&tv, 0);
    printf("gettimeofday agrees with realtime: %d\n", tv.tv_sec - rt.tv_sec <= 5 && tv.tv_sec >= rt.tv_sec);
    printf("time() agrees: %d\n", time(0) - rt.tv_sec <= 5);
    printf("clock_getres monotonic: %d\n", clock_getres(CLOCK_MONOTONIC, &res) == 0 && ns(res) > 0 && ns(res) <= 1000000);

    clock_gettime(CLOCK_MONOTONIC, &a);
    struct timespec d = {0, 20 * 1000 * 1000};
    nanosleep(&d, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("nanosleep 20ms slept >= 20ms: %d\n", ns(b) - ns(a) >= 20000000LL);
    clock_gettime(CLOCK_MONOTONIC, &a);
    usleep(10000);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("usleep 10ms slept >= 10ms: %d\n", ns(b) - ns(a) >= 10000000LL);

    unsigned char r1[32], r2[32];
    ssize_t n1 = getrandom(r1, sizeof r1, 0), n2 = getrandom(r2, sizeof r2, 0);
    printf("getrandom 32+32 bytes: %zd %zd, differ %d\n", n1, n2, memcmp(r1, r2, 32) != 0);
    int zero = 1;
    for (int i = 0; i < 32; i++) zero &= r1[i] == 0;
    printf("random not all zero: %d\n", !zero);
    clock_t c = clock();
    printf("clock() works: %d\n", c != (clock_t)-1);
    return 0;
}
