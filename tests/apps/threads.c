/* pthreads: a mutex-protected counter, a producer/consumer queue on condition variables,
 * a barrier round, __thread variables and pthread_join values. Deterministic output;
 * exits 3. */
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 4
#define INCREMENTS 100000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *count(void *arg) {
    for (int i = 0; i < INCREMENTS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return (void *)((intptr_t)arg * 100 + 1);
}

/* A bounded queue: one producer, two consumers, -1 ends a consumer. */
#define QCAP 8
#define ITEMS 2000
static int queue[QCAP];
static int qhead, qlen;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;

static void put(int v) {
    pthread_mutex_lock(&qlock);
    while (qlen == QCAP) pthread_cond_wait(&not_full, &qlock);
    queue[(qhead + qlen) % QCAP] = v;
    qlen++;
    pthread_cond_signal(&not_empty);
    pthread_mutex_unlock(&qlock);
}

static int get(void) {
    pthread_mutex_lock(&qlock);
    while (qlen == 0) pthread_cond_wait(&not_empty, &qlock);
    int v = queue[qhead];
    qhead = (qhead + 1) % QCAP;
    qlen--;
    pthread_cond_signal(&not_full);
    pthread_mutex_unlock(&qlock);
    return v;
}

struct consumed { long sum; long items; };

static void *consumer(void *arg) {
    struct consumed *c = arg;
    for (;;) {
        int v = get();
        if (v < 0) break;
        c->sum += v;
        c->items++;
    }
    return c;
}

static void *producer(void *arg) {
    (void)arg;
    for (int i = 1; i <= ITEMS; i++) put(i);
    put(-1);
    put(-1);
    return 0;
}

static pthread_barrier_t barrier;
static int slots[NTHREADS];
static __thread int tls = 5;

static void *barrier_round(void *arg) {
    int id = (int)(intptr_t)arg;
    int tls_start = tls; /* every thread starts with the initial value */
    tls = id * 10 + 1;
    slots[id] = id * id;
    int r = pthread_barrier_wait(&barrier);
    int sum = 0;
    for (int i = 0; i < NTHREADS; i++) sum += slots[i];
    for (int i = 0; i < 100; i++) sched_yield();
    int ok = tls_start == 5 && tls == id * 10 + 1 && sum == 0 + 1 + 4 + 9;
    /* bit 0: ok; bit 1: this thread was the barrier's serial thread */
    return (void *)(intptr_t)(ok | (r == PTHREAD_BARRIER_SERIAL_THREAD ? 2 : 0));
}

static sem_t done;
static int detached_ran;

static void *detached(void *arg) {
    (void)arg;
    detached_ran = 1;
    sem_post(&done);
    return 0;
}

int main(void) {
    pthread_t t[NTHREADS];

    for (intptr_t i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], 0, count, (void *)i)) { printf("pthread_create failed\n"); return 1; }
    long joined = 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        joined += (intptr_t)r;
    }
    printf("counter: %ld (want %d)\n", counter, NTHREADS * INCREMENTS);
    printf("join values sum: %ld (want 604)\n", joined);

    pthread_t prod, cons[2];
    struct consumed c[2];
    memset(c, 0, sizeof c);
    pthread_create(&cons[0], 0, consumer, &c[0]);
    pthread_create(&cons[1], 0, consumer, &c[1]);
    pthread_create(&prod, 0, producer, 0);
    pthread_join(prod, 0);
    void *r0, *r1;
    pthread_join(cons[0], &r0);
    pthread_join(cons[1], &r1);
    printf("queue: %ld items, sum %ld (want %d, %d)\n", c[0].items + c[1].items, c[0].sum + c[1].sum, ITEMS,
           ITEMS * (ITEMS + 1) / 2);
    printf("consumers returned their own state: %s\n", r0 == &c[0] && r1 == &c[1] ? "yes" : "no");

    pthread_barrier_init(&barrier, 0, NTHREADS);
    int ok = 0, serial = 0;
    for (intptr_t i = 0; i < NTHREADS; i++) pthread_create(&t[i], 0, barrier_round, (void *)i);
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        ok += (intptr_t)r & 1;
        serial += ((intptr_t)r & 2) != 0;
    }
    pthread_barrier_destroy(&barrier);
    printf("barrier: %d of %d threads saw every slot and their own __thread value\n", ok, NTHREADS);
    printf("barrier: serial threads: %d\n", serial);
    printf("main's __thread value untouched: %s\n", tls == 5 ? "yes" : "no");

    /* A detached thread that posts a semaphore, and pthread_self/pthread_equal. */
    sem_init(&done, 0, 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t d;
    pthread_create(&d, &attr, detached, 0);
    sem_wait(&done);
    printf("detached thread ran: %s\n", detached_ran ? "yes" : "no");
    pthread_t self = pthread_self();
    printf("pthread_equal(self, self): %s\n", pthread_equal(self, pthread_self()) ? "yes" : "no");
    fflush(stdout);
    return 3;
}
