/* Two threads hand a token back and forth through a futex word: every round the main
 * thread wakes the other and waits until it is woken back, so each round is two switches
 * between threads that are blocked in futex_wait. Prints only deterministic facts; with
 * `--time` it also times the rounds against bare syscall round trips (getppid) and prints
 * the ratio (for root-server/README.md; timings are never compared). Exits 0. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_PRIVATE_FLAG 128
#define ROUNDS 2000
#define SYSCALLS 20000

static atomic_int word; /* 1: the partner's turn, 0: main's turn */
static long partner_rounds;

static long futex(atomic_int *w, int op, int val) { return syscall(SYS_futex, w, op | FUTEX_PRIVATE_FLAG, val, 0, 0, 0); }

static void *partner(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        while (atomic_load(&word) == 0) futex(&word, FUTEX_WAIT, 0);
        partner_rounds++;
        atomic_store(&word, 0);
        futex(&word, FUTEX_WAKE, 1);
    }
    return 0;
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    int timed = argc > 1 && strcmp(argv[1], "--time") == 0;
    long long t0 = now_ns();
    long ok = 0;
    for (int i = 0; i < SYSCALLS; i++) ok += syscall(SYS_getppid) >= 0;
    long long t1 = now_ns();

    pthread_t t;
    pthread_create(&t, 0, partner, 0);
    long long t2 = now_ns();
    for (int i = 0; i < ROUNDS; i++) {
        atomic_store(&word, 1);
        futex(&word, FUTEX_WAKE, 1);
        while (atomic_load(&word) == 1) futex(&word, FUTEX_WAIT, 1);
    }
    long long t3 = now_ns();
    pthread_join(t, 0);
    printf("pingpong: %d rounds, partner saw %ld\n", ROUNDS, partner_rounds);
    printf("getppid: %d calls, %ld succeeded\n", SYSCALLS, ok);
    if (timed) {
        long long sys = (t1 - t0) / SYSCALLS, round = (t3 - t2) / ROUNDS;
        printf("time: syscall round trip %lld ns, ping-pong round %lld ns (2 switches)\n", sys, round);
        printf("time: one switch between futex-blocked threads = %lld.%02lld syscall round trips\n",
               round * 50 / sys / 100, round * 50 / sys % 100);
    }
    return 0;
}
