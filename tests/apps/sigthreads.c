/* Signals and threads: a signal sent to one thread (pthread_kill: tgkill) is taken by that
 * thread; a signal sent to the process while the main thread blocks it is taken by a
 * thread waiting in sigsuspend with it unblocked; sigsuspend returns EINTR and puts the
 * caller's mask back; sigpending shows a signal a thread sent itself while blocked. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile pid_t handled_by[65];
static volatile int handled[65];

static void on_signal(int sig) {
    handled_by[sig] = (pid_t)syscall(SYS_gettid);
    handled[sig]++;
}

static pid_t worker_tid;

static void *worker(void *arg) {
    (void)arg;
    worker_tid = (pid_t)syscall(SYS_gettid);
    sigset_t none, now;
    sigemptyset(&none);
    /* Waits until both have come: the SIGUSR1 sent to this thread and the SIGUSR2 sent
     * to the process (one sigsuspend may take both, as on Linux). */
    int all_eintr = 1, restored = 1;
    while (!(handled[SIGUSR1] && handled[SIGUSR2])) {
        int r = sigsuspend(&none);
        if (!(r == -1 && errno == EINTR)) all_eintr = 0;
        pthread_sigmask(SIG_BLOCK, NULL, &now);
        if (!(sigismember(&now, SIGUSR1) && sigismember(&now, SIGUSR2))) restored = 0;
    }
    printf("worker: sigsuspend returned EINTR: %s\n", all_eintr ? "yes" : "no");
    printf("worker: its mask was put back: %s\n", restored ? "yes" : "no");
    return NULL;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, NULL); /* the worker inherits it */

    /* A signal the main thread sends itself while blocking it stays pending on it. */
    raise(SIGHUP);
    sigset_t pend;
    sigpending(&pend);
    printf("main: SIGHUP pending: %s, handled: %d\n", sigismember(&pend, SIGHUP) ? "yes" : "no", handled[SIGHUP]);

    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_kill(t, SIGUSR1);
    kill(getpid(), SIGUSR2);
    pthread_join(t, NULL);
    printf("SIGUSR1 handled %d time(s), by the worker: %s\n", handled[SIGUSR1], handled_by[SIGUSR1] == worker_tid ? "yes" : "no");
    printf("SIGUSR2 handled %d time(s), by the worker: %s\n", handled[SIGUSR2], handled_by[SIGUSR2] == worker_tid ? "yes" : "no");

    /* Unblocking in main delivers the pending SIGHUP to main. */
    pthread_sigmask(SIG_UNBLOCK, &block, NULL);
    printf("main: SIGHUP handled %d time(s), by main: %s\n", handled[SIGHUP], handled_by[SIGHUP] == getpid() ? "yes" : "no");
    return 3;
}
