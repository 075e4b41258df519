/* A fork bomb: forks until fork fails; every child waits in pause() for its end. Then it
 * kills and reaps every child and says how fork failed. No counts are printed (they depend
 * on the limits), so the output is deterministic; exits 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAP 20000 /* a safety net: a bomb that never fails stops here */

static pid_t kids[CAP];

static const char *errname(int e) {
    return e == EAGAIN ? "EAGAIN" : e == ENOMEM ? "ENOMEM" : strerror(e);
}

int main(void) {
    setvbuf(stdout, 0, _IOLBF, 0);
    printf("forkbomb: starting\n");
    fflush(stdout);
    /* The children get no stdout: what a child that dies while being made might print
     * (qemu-user's does when the limit hits between its threads) must not mix in. */
    int saved = dup(1);
    close(1);
    int n = 0, err = 0;
    while (n < CAP) {
        pid_t p = fork();
        if (p == 0) {
            for (;;) pause();
        }
        if (p < 0) {
            err = errno;
            break;
        }
        kids[n++] = p;
    }
    dup2(saved, 1);
    close(saved);
    if (err)
        printf("fork failed with %s\n", errname(err));
    else
        printf("fork never failed in %d tries\n", CAP);
    int killed = 0;
    for (int i = 0; i < n; i++) killed += kill(kids[i], SIGKILL) == 0;
    int reaped = 0;
    for (int i = 0; i < n; i++) {
        int st;
        reaped += waitpid(kids[i], &st, 0) == kids[i];
    }
    printf("killed every child: %s\n", killed == n ? "yes" : "no");
    printf("reaped every child: %s\n", reaped == n ? "yes" : "no");
    errno = 0;
    printf("no child left: %s\n", wait(0) == -1 && errno == ECHILD ? "yes" : "no");
    /* fork works again once the children are gone */
    pid_t p = fork();
    if (p == 0) _exit(0);
    int st = -1;
    if (p > 0) waitpid(p, &st, 0);
    printf("fork after cleanup: %s\n", p > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "failed");
    return 0;
}
