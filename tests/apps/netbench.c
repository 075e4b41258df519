/* Two apps on one network, measured against baselines in the same run:
 *   netbench server PORT        accepts one client, takes a 64 MiB stream, then echoes
 *                               64-byte messages until the client closes;
 *   netbench client PORT HOST   sends the stream and times it against memcpy of 64 MiB in
 *                               this app, then times 64-byte round trips against getppid
 *                               (a syscall answered by the same server without a peer).
 * The byte counts and checksums are exact; the times are printed as ratios, never judged. */
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TOTAL (64u << 20)
#define CHUNK (64u << 10)
#define TRIPS 2000

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static uint64_t sum(const unsigned char *b, size_t n, uint64_t s) {
    for (size_t i = 0; i < n; i++) s = s * 31 + b[i];
    return s;
}

static int full(int fd, unsigned char *b, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static int server(int port) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1)) { perror("server"); return 1; }
    int s = accept(l, NULL, NULL);
    static unsigned char buf[CHUNK];
    uint64_t total = 0, h = 0;
    while (total < TOTAL) {
        ssize_t r = read(s, buf, sizeof buf);
        if (r <= 0) break;
        h = sum(buf, (size_t)r, h);
        total += (uint64_t)r;
    }
    printf("server: got %llu bytes, sum %016llx\n", (unsigned long long)total, (unsigned long long)h);
    fflush(stdout);
    unsigned char m[64];
    int trips = 0;
    while (full(s, m, sizeof m) == 0) {
        write(s, m, sizeof m);
        trips++;
    }
    printf("server: echoed %d messages\n", trips);
    return 0;
}

static int client(const char *port, const char *host) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai)) { printf("client: cannot resolve %s\n", host); return 2; }
    int s = -1;
    for (int tries = 0; tries < 400 && s < 0; tries++) {
        s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, ai->ai_addr, ai->ai_addrlen)) {
            close(s);
            s = -1;
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (s < 0) { printf("client: server never came up\n"); return 3; }
    /* memcpy of 64 MiB in this app: 4 MiB buffers, sixteen times. */
    size_t big = 4u << 20;
    unsigned char *src = malloc(big), *dst = malloc(big);
    for (size_t i = 0; i < big; i++) src[i] = (unsigned char)(i * 7 + 1);
    memcpy(dst, src, big); /* touch every page first */
    double t0 = now_s();
    for (int i = 0; i < 16; i++) { src[0] = (unsigned char)i; memcpy(dst, src, big); }
    double copy = now_s() - t0;
    /* The stream: 64 MiB in 64 KiB writes. */
    static unsigned char buf[CHUNK];
    uint64_t h = 0;
    t0 = now_s();
    for (uint32_t off = 0; off < TOTAL; off += CHUNK) {
        for (uint32_t i = 0; i < CHUNK; i += 4096) buf[i] = (unsigned char)((off + i) >> 12);
        h = sum(buf, CHUNK, h);
        size_t done = 0;
        while (done < CHUNK) {
            ssize_t w = write(s, buf + done, CHUNK - done);
            if (w <= 0) { printf("client: write failed\n"); return 4; }
            done += (size_t)w;
        }
    }
    double stream = now_s() - t0;
    printf("client: sent %u bytes, sum %016llx\n", TOTAL, (unsigned long long)h);
    /* Round trips of 64 bytes, and getppid as the baseline. */
    unsigned char m[64];
    memset(m, 'm', sizeof m);
    t0 = now_s();
    for (int i = 0; i < TRIPS; i++) {
        write(s, m, sizeof m);
        if (full(s, m, sizeof m)) { printf("client: echo lost\n"); return 5; }
    }
    double rtt = (now_s() - t0) / TRIPS;
    t0 = now_s();
    for (int i = 0; i < TRIPS; i++) syscall(SYS_getppid);
    double ppid = (now_s() - t0) / TRIPS;
    printf("client: %d round trips done\n", TRIPS);
    close(s);
    fprintf(stderr, "bench: stream 64 MiB %.1f ms (%.0f MiB/s), memcpy 64 MiB %.1f ms (%.0f MiB/s): stream/memcpy time %.1fx\n",
            stream * 1e3, 64 / stream, copy * 1e3, 64 / copy, stream / copy);
    fprintf(stderr, "bench: 64-byte round trip %.1f us, getppid %.2f us: round trip/getppid %.1fx\n", rtt * 1e6, ppid * 1e6, rtt / ppid);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "server")) return server(atoi(argv[2]));
    if (argc >= 4 && !strcmp(argv[1], "client")) return client(argv[2], argv[3]);
    fprintf(stderr, "usage: netbench server PORT | netbench client PORT HOST\n");
    return 64;
}
