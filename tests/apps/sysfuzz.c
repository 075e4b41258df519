/* A syscall fuzzer that runs inside an app: four threads make random syscalls with random
 * arguments (small numbers, -1, pointers into a scratch buffer, the stack, random words),
 * seeded from argv[1]. The calls that would end the fuzzer itself at once (exit,
 * exit_group, kill, rt_sigreturn, clone, execve, unmapping or protecting its own memory)
 * are left out; everything else goes, blocking calls included. After a while the main
 * thread ends the process. Whatever the app does to itself, the runner must survive it
 * and the apps beside it must not notice.
 *
 * The main thread creates every worker before any of them starts: a worker's random
 * set_tid_address moves the word its exit clears, so a worker that ends leaves musl's
 * thread-list lock held, as on Linux, and a pthread_create after that would wait for it
 * for ever (CI once saw exactly that hang, under load, when a worker finished its calls
 * before the main thread had created the next one). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4
#define CALLS 3000

static unsigned char scratch[1 << 16];
static int go;

static int excluded(long nr) {
    switch (nr) {
    case 93: case 94:            /* exit, exit_group */
    case 129: case 130: case 131: /* kill, tkill, tgkill */
    case 139:                     /* rt_sigreturn */
    case 215: case 216: case 222: case 226: case 214: /* munmap mremap mmap mprotect brk */
    case 220: case 221: case 435: /* clone, execve, clone3 */
    case 233:                     /* madvise (DONTNEED on our own stack) */
    case 98:                      /* futex: random waits on our own words never end */
        return 1;
    }
    return 0;
}

static uint64_t next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static long arg(uint64_t *s) {
    switch (next(s) % 6) {
    case 0: return (long)(next(s) % 16);
    case 1: return -1;
    case 2: return (long)(scratch + next(s) % (sizeof scratch - 256));
    case 3: { char probe; return (long)(&probe - 512); }
    case 4: return (long)next(s);
    default: return (long)(next(s) % 4096);
    }
}

static void *worker(void *p) {
    uint64_t s = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull + 1;
    while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) syscall(SYS_sched_yield);
    for (int i = 0; i < CALLS; i++) {
        long nr = (long)(next(&s) % 300);
        if (excluded(nr)) continue;
        long a[6];
        for (int k = 0; k < 6; k++) a[k] = arg(&s);
        syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    }
    return NULL;
}

int main(int argc, char **argv) {
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    printf("sysfuzz: seed %llu\n", (unsigned long long)seed);
    fflush(stdout);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(seed * 16 + i + 1));
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    struct timespec ts = {2, 0};
    syscall(SYS_nanosleep, &ts, NULL);
    syscall(SYS_exit_group, 0);
    return 0;
}
