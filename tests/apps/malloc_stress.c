/* Malloc stress: many small allocations, large ones (mmap), realloc growth (mremap),
 * calloc zeroing, raw brk, anonymous and file-backed mmap, mprotect. Prints only
 * checksums and verdicts, never addresses. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static uint32_t rng = 12345;
static uint32_t next(void) { rng = rng * 1103515245u + 12345u; return rng >> 8; }

int main(void) {
    enum { N = 20000 };
    static unsigned char *p[N];
    static size_t sz[N];
    uint64_t sum = 0;
    for (int i = 0; i < N; i++) {
        sz[i] = 1 + next() % 700;
        p[i] = malloc(sz[i]);
        if (!p[i]) { printf("small malloc failed at %d\n", i); return 1; }
        memset(p[i], i & 0xff, sz[i]);
    }
    for (int i = 0; i < N; i += 2) { free(p[i]); p[i] = 0; }
    for (int i = 1; i < N; i += 2) {
        for (size_t k = 0; k < sz[i]; k++) if (p[i][k] != (i & 0xff)) { printf("corrupt %d\n", i); return 1; }
        sum += sz[i] * (i & 0xff);
    }
    printf("small: %d allocs, checksum %llu\n", N, (unsigned long long)sum);

    size_t big[] = {200 << 10, 1 << 20, 8 << 20, 3 << 20};
    for (int i = 0; i < 4; i++) {
        unsigned char *b = malloc(big[i]);
        if (!b) { printf("big malloc %zu failed\n", big[i]); return 1; }
        for (size_t k = 0; k < big[i]; k += 4096) b[k] = (unsigned char)(k >> 12);
        uint64_t s = 0;
        for (size_t k = 0; k < big[i]; k += 4096) s += b[k];
        printf("big %zu KiB: checksum %llu\n", big[i] >> 10, (unsigned long long)s);
        free(b);
    }

    unsigned char *r = malloc(100);
    memset(r, 7, 100);
    for (size_t n = 1000; n <= (16 << 20); n *= 4) {
        r = realloc(r, n);
        if (!r || r[0] != 7 || r[99] != 7) { printf("realloc %zu lost data\n", n); return 1; }
    }
    printf("realloc to 16 MiB kept data\n");
    free(r);

    unsigned *z = calloc(1 << 18, sizeof *z);
    int nonzero = 0;
    for (int i = 0; i < (1 << 18); i++) nonzero |= z[i];
    printf("calloc 1 MiB zeroed: %d\n", !nonzero);
    free(z);

    uintptr_t cur = syscall(SYS_brk, 0);
    uintptr_t grown = syscall(SYS_brk, cur + (1 << 20));
    printf("brk grows by 1 MiB: %d\n", grown == cur + (1 << 20));
    memset((void *)cur, 0x5a, 1 << 20);
    uintptr_t back = syscall(SYS_brk, cur);
    printf("brk shrinks back: %d\n", back == cur);

    unsigned char *m = mmap(0, 5 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("anon mmap: %d zeroed %d\n", m != MAP_FAILED, m != MAP_FAILED && m[4 * 4096 + 17] == 0);
    m[0] = 1;
    printf("mprotect read-only: %d\n", mprotect(m, 4096, PROT_READ));
    printf("munmap middle: %d\n", munmap(m + 4096, 4096));
    unsigned char *m2 = mremap(m + 2 * 4096, 3 * 4096, 64 * 4096, MREMAP_MAYMOVE);
    printf("mremap grow: %d\n", m2 != MAP_FAILED);

    int fd = open("/foo.txt", O_RDONLY);
    char *fm = mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("file mmap: %.3s\n", fm == MAP_FAILED ? "ERR" : fm);
    close(fd);
    return 0;
}
