/* chan: a publisher and a consumer of selkie channels (/dev/selkie/channels/NAME: the
 * manifest's publishes and consumes), run as two apps of one image.
 *
 *   chan sub   consumes hello_protocol, publishes acks: maps hello_protocol's ring
 *              read-only, says "ready" on acks, then reads messages until the publisher
 *              is gone, and compares what the mapping shows with what read() returned
 *   chan pub   publishes hello_protocol, consumes acks: waits for "ready", then sends
 *              MESSAGES messages (more than the ring keeps, so it must wait for the reader)
 *   chan none  names no channel: the channels are not there for it
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DIR "/dev/selkie/channels/"
#define MESSAGES 20
#define RING_BYTES 16384
#define HEADER_BYTES 64
#define SLOTS 16
#define SLOT_BYTES 1016

static uint64_t le64(const volatile unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int sub(void) {
    int w = open(DIR "hello_protocol", O_WRONLY);
    printf("sub: open hello_protocol for writing: %s\n", w < 0 ? strerror(errno) : "opened");
    int fd = open(DIR "hello_protocol", O_RDONLY);
    if (fd < 0) { printf("sub: open hello_protocol: %s\n", strerror(errno)); return 1; }
    const volatile unsigned char *ring = mmap(0, RING_BYTES, PROT_READ, MAP_SHARED, fd, 0);
    if (ring == MAP_FAILED) { printf("sub: mmap: %s\n", strerror(errno)); return 1; }
    printf("sub: ring %.8s, %llu messages at first\n", (const char *)ring, (unsigned long long)le64(ring + 24));
    int acks = open(DIR "acks", O_WRONLY);
    if (acks < 0 || write(acks, "ready", 5) != 5) { printf("sub: ack: %s\n", strerror(errno)); return 1; }
    char m[1100], last[1100] = "";
    int n = 0;
    for (;;) {
        ssize_t r = read(fd, m, sizeof m - 1);
        if (r < 0) { printf("sub: read: %s\n", strerror(errno)); return 1; }
        if (r == 0) break;
        m[r] = 0;
        printf("sub: got %s\n", m);
        strcpy(last, m);
        n++;
    }
    printf("sub: %d messages, then the publisher was gone\n", n);
    uint64_t count = le64(ring + 24);
    printf("sub: the mapping counts %llu messages\n", (unsigned long long)count);
    if (count == MESSAGES) {
        const volatile unsigned char *slot = ring + HEADER_BYTES + ((MESSAGES - 1) % SLOTS) * SLOT_BYTES;
        uint64_t len = slot[8] | slot[9] << 8;
        int same = le64(slot) == MESSAGES - 1 && len == strlen(last) && memcmp((const void *)(slot + 16), last, len) == 0;
        printf("sub: the mapping's last message %s what read returned\n", same ? "is" : "is NOT");
    }
    return n == MESSAGES ? 0 : 1;
}

static int pub(void) {
    int fd = open(DIR "hello_protocol", O_WRONLY);
    int acks = open(DIR "acks", O_RDONLY);
    if (fd < 0 || acks < 0) { printf("pub: open: %s\n", strerror(errno)); return 1; }
    char m[64];
    ssize_t r = read(acks, m, sizeof m - 1);
    if (r <= 0) { printf("pub: no ack\n"); return 1; }
    m[r] = 0;
    printf("pub: the consumer said %s\n", m);
    char big[1001];
    memset(big, 'x', sizeof big);
    printf("pub: a message of 1001 bytes: %s\n", write(fd, big, sizeof big) < 0 ? strerror(errno) : "sent");
    for (int i = 0; i < MESSAGES; i++) {
        int len = snprintf(m, sizeof m, "hello_protocol #%d", i);
        if (write(fd, m, len) != len) { printf("pub: write %d: %s\n", i, strerror(errno)); return 1; }
    }
    printf("pub: sent %d messages\n", MESSAGES);
    return 0;
}

static int none(void) {
    int fd = open(DIR "hello_protocol", O_RDONLY);
    printf("none: open hello_protocol: %s\n", fd < 0 ? strerror(errno) : "opened");
    return fd < 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IOLBF, 0);
    if (argc == 2 && !strcmp(argv[1], "sub")) return sub();
    if (argc == 2 && !strcmp(argv[1], "pub")) return pub();
    if (argc == 2 && !strcmp(argv[1], "none")) return none();
    fprintf(stderr, "usage: chan sub | chan pub | chan none\n");
    return 2;
}
