/* Sockets between processes of one app: a socketpair, an AF_UNIX stream server and a
 * forked client, TCP over loopback with 1 MiB each way (back-pressure) and shutdown,
 * UDP datagrams with their sender's address, AF_UNIX datagrams, poll on a listener,
 * non-blocking accept and recv, and a refused connect. Prints what it saw; exits 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int check(int ok, const char *what) {
    printf("%s: %s\n", what, ok ? "ok" : "FAILED");
    if (!ok) printf("  errno %d (%s)\n", errno, strerror(errno));
    return ok;
}

static ssize_t read_all(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) return r < 0 ? r : (ssize_t)got;
        got += r;
    }
    return got;
}

static void pair(void) {
    int sv[2];
    check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    write(sv[0], "over", 4);
    char b[8] = {0};
    check(read(sv[1], b, sizeof b) == 4 && !memcmp(b, "over", 4), "socketpair carries bytes");
    close(sv[0]);
    check(read(sv[1], b, sizeof b) == 0, "socketpair end of file after close");
    close(sv[1]);
}

static void unix_stream(void) {
    const char *path = "/selkie.sock";
    unlink(path);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    check(bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 4) == 0, "unix bind and listen");
    pid_t c = fork();
    if (c == 0) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) _exit(2);
        write(s, "ping", 4);
        char b[4];
        if (read_all(s, b, 4) != 4 || memcmp(b, "pong", 4)) _exit(3);
        _exit(0);
    }
    int s = accept(l, NULL, NULL);
    char b[4];
    check(read_all(s, b, 4) == 4 && !memcmp(b, "ping", 4), "unix server reads ping");
    write(s, "pong", 4);
    int st;
    waitpid(c, &st, 0);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "unix client got pong");
    close(s);
    close(l);
    unlink(path);
}

#define BIG (1 << 20)

static void tcp(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    check(bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 8) == 0, "tcp bind port 0 and listen");
    socklen_t al = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &al);
    check(a.sin_port != 0 && a.sin_addr.s_addr == htonl(INADDR_LOOPBACK), "tcp listener has a port");
    struct pollfd p = {.fd = l, .events = POLLIN};
    check(poll(&p, 1, 0) == 0, "tcp listener not readable before a client");
    pid_t c = fork();
    if (c == 0) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int nd = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &nd, sizeof nd);
        if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) _exit(2);
        char *buf = malloc(BIG);
        for (int i = 0; i < BIG; i++) buf[i] = (char)(i * 7);
        size_t sent = 0;
        while (sent < BIG) { ssize_t w = write(s, buf + sent, BIG - sent); if (w <= 0) _exit(4); sent += w; }
        shutdown(s, SHUT_WR);
        /* The server echoes a checksum line. */
        char line[64] = {0};
        ssize_t n = read_all(s, line, sizeof line - 1);
        if (n <= 0) _exit(5);
        printf("client got: %s", line);
        fflush(stdout);
        _exit(0);
    }
    check(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN), "tcp listener readable with a client");
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int s = accept(l, (struct sockaddr *)&peer, &pl);
    check(s >= 0 && peer.sin_family == AF_INET && peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK) && peer.sin_port != 0, "tcp accept gives the client's address");
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    getsockname(s, (struct sockaddr *)&me, &ml);
    check(me.sin_port == a.sin_port, "tcp accepted socket has the listener's port");
    char *buf = malloc(BIG);
    ssize_t got = read_all(s, buf, BIG);
    unsigned long sum = 0;
    int ok = got == BIG;
    for (int i = 0; i < got; i++) { sum = sum * 31 + (unsigned char)buf[i]; if (buf[i] != (char)(i * 7)) ok = 0; }
    check(ok, "tcp 1 MiB arrives intact");
    char extra;
    check(read(s, &extra, 1) == 0, "tcp end of file after the client's shutdown");
    char line[64];
    snprintf(line, sizeof line, "sum %lx\n", sum);
    write(s, line, strlen(line));
    close(s);
    int st;
    waitpid(c, &st, 0);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "tcp client done");
    close(l);
    int r = socket(AF_INET, SOCK_STREAM, 0);
    check(connect(r, (struct sockaddr *)&a, sizeof a) == -1 && errno == ECONNREFUSED, "connect to a closed port is refused");
    close(r);
}

/* A TCP socket closed with data unread resets the connection: the peer reads what came
 * before, then gets ECONNRESET once (from its next read, or its next write), then EPIPE. */
static int connected(int l, struct sockaddr_in *a, int *server) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr *)a, sizeof *a);
    *server = accept(l, NULL, NULL);
    return c;
}

static void reset(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 2);
    getsockname(l, (struct sockaddr *)&a, &al);
    signal(SIGPIPE, SIG_IGN);
    int s, c = connected(l, &a, &s);
    write(c, "unread", 6);
    write(s, "for you", 7);
    usleep(50000);
    close(s);
    usleep(50000);
    char b[16];
    check(read(c, b, sizeof b) == 7, "tcp data that came before a reset is read");
    check(read(c, b, sizeof b) == -1 && errno == ECONNRESET, "tcp read after the peer closed with data unread: ECONNRESET");
    check(write(c, "x", 1) == -1 && errno == EPIPE, "tcp write after the reset was reported: EPIPE");
    close(c);
    c = connected(l, &a, &s);
    write(c, "unread", 6);
    usleep(50000);
    close(s);
    usleep(50000);
    check(write(c, "x", 1) == -1 && errno == ECONNRESET, "tcp write after the peer closed with data unread: ECONNRESET");
    check(write(c, "x", 1) == -1 && errno == EPIPE, "tcp write after that: EPIPE");
    check(read(c, b, sizeof b) == 0, "tcp read after that: end of file");
    close(c);
    close(l);
    signal(SIGPIPE, SIG_DFL);
}

static void udp(void) {
    int x = socket(AF_INET, SOCK_DGRAM, 0), y = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(x, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(x, (struct sockaddr *)&a, &al);
    sendto(y, "one", 3, 0, (struct sockaddr *)&a, sizeof a);
    sendto(y, "second", 6, 0, (struct sockaddr *)&a, sizeof a);
    char b[16];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(x, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
    struct sockaddr_in ya;
    socklen_t yl = sizeof ya;
    getsockname(y, (struct sockaddr *)&ya, &yl);
    check(n == 3 && !memcmp(b, "one", 3) && from.sin_port == ya.sin_port && ya.sin_port != 0, "udp datagram with its sender");
    n = recv(x, b, 2, 0);
    check(n == 2, "udp datagram cut to the buffer");
    n = recv(x, b, sizeof b, MSG_DONTWAIT);
    check(n == -1 && errno == EAGAIN, "udp queue empty: EAGAIN");
    close(x);
    close(y);

    int u[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, u);
    send(u[0], "a", 1, 0);
    send(u[0], "bc", 2, 0);
    check(recv(u[1], b, sizeof b, 0) == 1 && recv(u[1], b, sizeof b, 0) == 2, "unix datagrams keep their bounds");
    close(u[0]);
    close(u[1]);
}

/* What mosquitto and glibc's getaddrinfo do: [::]:p with IPV6_V6ONLY beside 0.0.0.0:p,
 * and an IPv6 datagram socket connected to an IPv4 address names itself v4-mapped. */
static void v6only(void) {
    int one = 1, got = 0;
    socklen_t gl = sizeof got;
    int s4 = socket(AF_INET, SOCK_STREAM, 0);
    /* Port 0: the reference runs on the host's own loopback, beside other tests. */
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    socklen_t al = sizeof a4;
    check(bind(s4, (struct sockaddr *)&a4, sizeof a4) == 0 && listen(s4, 1) == 0 && getsockname(s4, (struct sockaddr *)&a4, &al) == 0,
          "v4 listener on 0.0.0.0");
    int s6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = a4.sin_port};
    check(bind(s6, (struct sockaddr *)&a6, sizeof a6) == -1 && errno == EADDRINUSE, "dual-stack [::] clashes with 0.0.0.0");
    close(s6);
    s6 = socket(AF_INET6, SOCK_STREAM, 0);
    setsockopt(s6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    getsockopt(s6, IPPROTO_IPV6, IPV6_V6ONLY, &got, &gl);
    check(got == 1, "IPV6_V6ONLY reads back");
    check(bind(s6, (struct sockaddr *)&a6, sizeof a6) == 0 && listen(s6, 1) == 0, "v6-only listener beside it");
    int c = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 to6 = {.sin6_family = AF_INET6, .sin6_port = a4.sin_port, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    check(connect(c, (struct sockaddr *)&to6, sizeof to6) == 0, "[::1] reaches the v6-only listener");
    int acc = accept(s6, NULL, NULL);
    check(acc >= 0, "the v6-only listener accepts it");
    close(acc); close(c);
    c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to4 = {.sin_family = AF_INET, .sin_port = a4.sin_port, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    check(connect(c, (struct sockaddr *)&to4, sizeof to4) == 0 && (acc = accept(s4, NULL, NULL)) >= 0, "127.0.0.1 reaches the v4 listener");
    close(acc); close(c); close(s4); close(s6);
    int u = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 m6 = {.sin6_family = AF_INET6, .sin6_port = htons(9)};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &m6.sin6_addr);
    struct sockaddr_in6 me;
    socklen_t ml = sizeof me;
    check(connect(u, (struct sockaddr *)&m6, sizeof m6) == 0 && getsockname(u, (struct sockaddr *)&me, &ml) == 0 && me.sin6_family == AF_INET6 &&
              IN6_IS_ADDR_V4MAPPED(&me.sin6_addr), "v6 datagram socket connected to a v4-mapped address names itself v4-mapped");
    close(u);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pair();
    unix_stream();
    tcp();
    reset();
    udp();
    int l = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bind(l, (struct sockaddr *)&a6, sizeof a6);
    listen(l, 1);
    check(accept(l, NULL, NULL) == -1 && errno == EAGAIN, "non-blocking accept: EAGAIN");
    v6only();
    return 0;
}
