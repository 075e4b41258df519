/* Creates 20000 (or argv[1]) empty files with long names in /tmp (each costs the seL4 root
 * server an inode and a directory entry in its heap), printing progress; with "symlinks"
 * as argv[2], symlinks whose targets are 4000 bytes long instead (each costs the heap
 * about 4 KiB, and nothing of the app's write limit). On Linux it finishes; on seL4 the
 * root server must stop it at its heap quota and keep serving the other apps. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 20000;
    int symlinks = argc > 2 && !strcmp(argv[2], "symlinks");
    char name[300];
    char pad[241];
    static char target[4001];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
    memset(target, 't', sizeof target - 1);
    mkdir("/tmp", 01777); /* the image may have none; selkie always has one */
    for (int i = 0; i < count; i++) {
        snprintf(name, sizeof name, "/tmp/%s%06d", pad, i);
        if (symlinks) {
            if (symlink(target, name) != 0) {
                perror("symlink");
                printf("stopped at %d\n", i);
                return 1;
            }
        } else {
            int fd = open(name, O_CREAT | O_WRONLY, 0644);
            if (fd < 0) {
                perror("open");
                printf("stopped at %d\n", i);
                return 1;
            }
            close(fd);
        }
        if (i % 1000 == 999)
            printf("created %d\n", i + 1);
    }
    printf("created all\n");
    return 0;
}
