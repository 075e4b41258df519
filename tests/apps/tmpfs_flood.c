/* Creates 20000 (or argv[1]) empty files with long names in /tmp (each costs the seL4 root server an
 * inode and a directory entry in its heap), printing progress. On Linux it finishes; on
 * seL4 the root server must stop it at its heap quota and keep serving the other apps. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 20000;
    char name[300];
    char pad[241];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
    mkdir("/tmp", 01777); /* the image may have none; selkie always has one */
    for (int i = 0; i < count; i++) {
        snprintf(name, sizeof name, "/tmp/%s%06d", pad, i);
        int fd = open(name, O_CREAT | O_WRONLY, 0644);
        if (fd < 0) {
            perror("open");
            printf("stopped at %d\n", i);
            return 1;
        }
        close(fd);
        if (i % 1000 == 999)
            printf("created %d\n", i + 1);
    }
    printf("created all\n");
    return 0;
}
