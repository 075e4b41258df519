/* Maps files of the image read-only (whole) and reports what mmap gave: the file's
 * first byte. On seL4 the root server writes a private mapping into the app's frames a
 * chunk at a time, so a file bigger than its heap maps too, as on Linux. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            printf("%s: %s\n", argv[i], strerror(errno));
            continue;
        }
        unsigned char *p = mmap(NULL, st.st_size, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
            printf("%s: mmap of %lld bytes: %s\n", argv[i], (long long)st.st_size, strerror(errno));
        else
            printf("%s: mmap of %lld bytes: ok, first byte %u\n", argv[i], (long long)st.st_size, p[0]);
        close(fd);
    }
    return 0;
}
