/* Reads the files named on the command line (its own binary, /proc/self/exe) by read() and
 * by a read-only mmap, and prints their size, an FNV-1a hash and how many svc #0 words they
 * hold at 4-byte aligned offsets: on Linux a program sees its file as the image has it, so
 * these must match (selkie keeps the rewritten code apart from the rootfs). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void summary(const char *how, const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    size_t svcs = 0;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        uint32_t w;
        memcpy(&w, p + i, 4);
        if (w == 0xd4000001u) svcs++;
    }
    printf("%s: %zu bytes, fnv %016llx, %zu svc words\n", how, n, (unsigned long long)h, svcs);
}

int main(int argc, char **argv) {
    for (int a = 1; a < argc; a++) {
        int fd = open(argv[a], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) { printf("%s: cannot open\n", argv[a]); return 2; }
        unsigned char *buf = malloc(st.st_size);
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, st.st_size - got);
            if (r <= 0) break;
            got += r;
        }
        printf("%s\n", argv[a]);
        summary("  read", buf, got);
        void *m = mmap(0, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) { printf("  mmap failed\n"); return 3; }
        summary("  mmap", m, st.st_size);
        printf("  same: %s\n", memcmp(m, buf, st.st_size) == 0 ? "yes" : "no");
        munmap(m, st.st_size);
        free(buf);
        close(fd);
    }
    return 0;
}
