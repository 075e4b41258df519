/* The cost of a syscall that the runner answers at once: ROUNDS rounds of N getppid
 * calls, timed with CLOCK_MONOTONIC, less the same loop with no syscall in it; the median
 * round is printed.
 * getppid() is musl's own wrapper, a syscall of no arguments (syscall() would pass six
 * words it reads from wherever varargs are).
 *
 *   sysbench [--first] [--wait CHANNEL] [--signal CHANNEL] ROUNDS N LABEL
 *
 * --wait CHANNEL:   before each round (but the first, with --first) read one message from
 *                   /dev/selkie/channels/CHANNEL;
 * --signal CHANNEL: after each round, publish one on it.
 * Two of these in one image, each signalling the other, take turns round by round, so
 * that both see the same machine (under an emulator the host's load varies). stdout has
 * only what is the same everywhere; the time goes to stderr as a `bench:` line, never
 * judged by the app. Built with Debian's musl (each svc rewritten at pack time) and with
 * the selkie SDK (each svc carries its number in x7), it compares the two paths. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int channel(const char *name, int flags) {
    char path[128];
    snprintf(path, sizeof path, "/dev/selkie/channels/%s", name);
    int fd = open(path, flags);
    if (fd < 0) perror(path);
    return fd;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *wait = NULL, *signal = NULL;
    int first = 0, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--first") == 0) first = 1;
        else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) wait = argv[++i];
        else if (strcmp(argv[i], "--signal") == 0 && i + 1 < argc) signal = argv[++i];
    }
    if (argc - i != 3 || atoi(argv[i]) < 1 || atoi(argv[i]) > 64) {
        fprintf(stderr, "usage: sysbench [--first] [--wait CHANNEL] [--signal CHANNEL] ROUNDS(1-64) N LABEL\n");
        return 2;
    }
    int rounds = atoi(argv[i]);
    long n = atol(argv[i + 1]);
    const char *label = argv[i + 2];
    int out = signal ? channel(signal, O_WRONLY) : -1;
    int in = wait ? channel(wait, O_RDONLY) : -1;
    if ((signal && out < 0) || (wait && in < 0)) return 3;
    double per_call[64];
    pid_t ppid = 0;
    for (int r = 0; r < rounds; r++) {
        char m[16];
        if (in >= 0 && !(first && r == 0) && read(in, m, sizeof m) <= 0) return 4;
        /* Warm up, then time the calls and the empty loop. */
        for (long k = 0; k < n / 10; k++) ppid = getppid();
        double t0 = now_ns();
        for (long k = 0; k < n; k++) ppid = getppid();
        double calls = now_ns() - t0;
        volatile long sink = 0;
        t0 = now_ns();
        for (long k = 0; k < n; k++) sink += k;
        per_call[r] = (calls - (now_ns() - t0)) / n;
        if (out >= 0 && write(out, "turn", 4) != 4) return 5;
    }
    qsort(per_call, rounds, sizeof per_call[0], cmp);
    printf("%s: %d rounds of %ld getppid calls, all answered %s\n", label, rounds, n, ppid == getppid() ? "alike" : "differently");
    fflush(stdout);
    fprintf(stderr, "bench: %s getppid %.0f ns (median of %d rounds of %ld calls; fastest %.0f, slowest %.0f)\n", label,
            per_call[rounds / 2], rounds, n, per_call[0], per_call[rounds - 1]);
    return 0;
}
