/* A thread storm: creates threads until pthread_create fails; every thread waits on a
 * condition variable until the storm is over. Then it wakes and joins them all and says
 * how pthread_create failed. No counts are printed; exits 0. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define CAP 20000 /* a safety net: a storm that never fails stops here */

static pthread_t threads[CAP];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t over_cv = PTHREAD_COND_INITIALIZER;
static int over, started;

static void *wait_for_the_end(void *arg) {
    pthread_mutex_lock(&lock);
    started++;
    while (!over) pthread_cond_wait(&over_cv, &lock);
    pthread_mutex_unlock(&lock);
    return arg;
}

static const char *errname(int e) {
    return e == EAGAIN ? "EAGAIN" : e == ENOMEM ? "ENOMEM" : strerror(e);
}

int main(void) {
    printf("threadbomb: starting\n");
    fflush(stdout);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int n = 0, err = 0;
    while (n < CAP) {
        int e = pthread_create(&threads[n], &attr, wait_for_the_end, (void *)(long)(n + 1));
        if (e) {
            err = e;
            break;
        }
        n++;
    }
    if (err)
        printf("pthread_create failed with %s\n", errname(err));
    else
        printf("pthread_create never failed in %d tries\n", CAP);
    pthread_mutex_lock(&lock);
    over = 1;
    pthread_cond_broadcast(&over_cv);
    pthread_mutex_unlock(&lock);
    long joined = 0, right = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        if (pthread_join(threads[i], &r) == 0) joined++;
        right += (long)r == i + 1;
    }
    printf("joined every thread: %s\n", joined == n ? "yes" : "no");
    printf("every thread returned its argument: %s\n", right == n ? "yes" : "no");
    printf("every thread ran: %s\n", started == n ? "yes" : "no");
    /* threads can be made again once the storm is over */
    pthread_t t;
    void *r = 0;
    int e = pthread_create(&t, 0, wait_for_the_end, (void *)7L);
    if (e == 0) pthread_join(t, &r);
    printf("pthread_create after cleanup: %s\n", e == 0 && r == (void *)7L ? "ok" : "failed");
    return 0;
}
