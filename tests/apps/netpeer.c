/* The seed's compose pair: `netpeer server PORT` serves two clients one after the other
 * (reads a line, answers "ack N: LINE"); `netpeer client PORT HOST` resolves HOST (by
 * /etc/hosts: a service name), retries until the server is up, and makes two sessions.
 * A flood beside them: `netpeer sink PORT` accepts one connection, never reads it, and
 * closes it after a second; `netpeer flood PORT HOST` writes to the sink until it is
 * refused (non-blocking: EAGAIN), then blocks in a write until the sink is gone (EPIPE). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

static int read_line(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got + 1 < n) {
        ssize_t r = read(fd, buf + got, 1);
        if (r <= 0) break;
        if (buf[got++] == '\n') break;
    }
    buf[got] = 0;
    return (int)got;
}

static int server(int port) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4)) { perror("server: bind/listen"); return 1; }
    printf("server: listening\n");
    fflush(stdout);
    for (int n = 1; n <= 2; n++) {
        int s = accept(l, NULL, NULL);
        if (s < 0) { perror("server: accept"); return 1; }
        char line[128];
        read_line(s, line, sizeof line);
        printf("server: session %d got %s", n, line);
        fflush(stdout);
        char reply[160];
        snprintf(reply, sizeof reply, "ack %d: %s", n, line);
        write(s, reply, strlen(reply));
        close(s);
    }
    printf("server: done\n");
    return 0;
}

static int client(const char *port, const char *host) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    int e = getaddrinfo(host, port, &hints, &ai);
    if (e) { printf("client: cannot resolve %s: %s\n", host, gai_strerror(e)); return 2; }
    for (int n = 1; n <= 2; n++) {
        int s = -1;
        for (int tries = 0; tries < 200; tries++) {
            s = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0) break;
            close(s);
            s = -1;
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (s < 0) { printf("client: server never came up\n"); return 3; }
        char msg[64];
        snprintf(msg, sizeof msg, "hello %d from the client\n", n);
        write(s, msg, strlen(msg));
        char line[160];
        read_line(s, line, sizeof line);
        printf("client: got %s", line);
        fflush(stdout);
        close(s);
    }
    freeaddrinfo(ai);
    return 0;
}

static int connect_to(const char *port, const char *host) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai)) return -1;
    for (int tries = 0; tries < 200; tries++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0) return s;
        close(s);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static int sink(int port) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1)) { perror("sink"); return 1; }
    int s = accept(l, NULL, NULL);
    sleep(1);
    close(s);
    printf("sink: closed without reading\n");
    return 0;
}

static int flood(const char *port, const char *host) {
    signal(SIGPIPE, SIG_IGN);
    int s = connect_to(port, host);
    if (s < 0) { printf("flood: no sink\n"); return 3; }
    static char buf[4096];
    fcntl(s, F_SETFL, O_NONBLOCK);
    long total = 0;
    for (;;) {
        ssize_t w = write(s, buf, sizeof buf);
        if (w < 0) break;
        total += w;
        if (total > (64L << 20)) { printf("flood: never refused\n"); return 4; }
    }
    printf("flood: refused (%s) after %ld KiB\n", errno == EAGAIN ? "EAGAIN" : strerror(errno), total / 1024);
    fcntl(s, F_SETFL, 0);
    for (;;) {
        if (write(s, buf, sizeof buf) < 0) break;
    }
    printf("flood: blocked until the sink closed (%s)\n", errno == EPIPE ? "EPIPE" : errno == ECONNRESET ? "ECONNRESET" : strerror(errno));
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "sink")) return sink(atoi(argv[2]));
    if (argc >= 4 && !strcmp(argv[1], "flood")) return flood(argv[2], argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "server")) return server(atoi(argv[2]));
    if (argc >= 4 && !strcmp(argv[1], "client")) return client(argv[2], argv[3]);
    fprintf(stderr, "usage: netpeer server PORT | netpeer client PORT HOST\n");
    return 64;
}
