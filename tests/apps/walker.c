/* File walker: getdents (readdir), lstat/stat, readlink over a tree of the rootfs, plus
 * the path rules the VFS must get right (.., O_NOFOLLOW, O_DIRECTORY, cwd, dirfd). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char type_of(mode_t m) {
    if (S_ISDIR(m)) return 'd';
    if (S_ISREG(m)) return 'f';
    if (S_ISLNK(m)) return 'l';
    if (S_ISCHR(m)) return 'c';
    return '?';
}

static void walk(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) {
        printf("%s: opendir errno %d\n", dir, errno);
        return;
    }
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (lstat(path, &st)) {
            printf("%s: lstat errno %d\n", path, errno);
            continue;
        }
        printf("%*s%c %04o %u:%u %s", depth * 2, "", type_of(st.st_mode), st.st_mode & 07777,
               st.st_uid, st.st_gid, names[i]);
        if (S_ISREG(st.st_mode)) printf(" size=%lld nlink=%u", (long long)st.st_size, (unsigned)st.st_nlink);
        if (S_ISLNK(st.st_mode)) {
            char target[512];
            ssize_t len = readlink(path, target, sizeof target - 1);
            target[len < 0 ? 0 : len] = 0;
            struct stat ft;
            if (stat(path, &ft) == 0)
                printf(" -> %s (%c)", target, type_of(ft.st_mode));
            else
                printf(" -> %s (errno %d)", target, errno);
        }
        printf("\n");
        if (S_ISDIR(st.st_mode)) walk(path, depth + 1);
        free(names[i]);
    }
}

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : "/data";
    walk(root, 0);

    /* Path rules. */
    struct stat st;
    printf("stat /../../data: %d\n", stat("/../../data", &st) == 0 && S_ISDIR(st.st_mode));
    int fd = open("/data/a.txt", O_RDONLY | O_DIRECTORY);
    printf("O_DIRECTORY on a file: errno %d\n", fd < 0 ? errno : 0);
    fd = open("/data/link-a", O_RDONLY | O_NOFOLLOW);
    printf("O_NOFOLLOW on a symlink: errno %d\n", fd < 0 ? errno : 0);
    fd = open("/data/loop1", O_RDONLY);
    printf("symlink loop: errno %d\n", fd < 0 ? errno : 0);
    fd = open("/data/missing", O_RDONLY);
    printf("missing: errno %d\n", fd < 0 ? errno : 0);
    fd = open("/data/a.txt/x", O_RDONLY);
    printf("file as dir: errno %d\n", fd < 0 ? errno : 0);

    if (chdir("/data/sub/..") == 0) {
        char cwd[256];
        printf("cwd after chdir(/data/sub/..): %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
        int f = open("sub/deep/d.txt", O_RDONLY);
        char buf[64] = {0};
        ssize_t r = f >= 0 ? read(f, buf, sizeof buf - 1) : -1;
        printf("relative open: %zd %s", r, buf);
        if (f >= 0) {
            off_t end = lseek(f, 0, SEEK_END);
            char c = 0;
            ssize_t p = pread(f, &c, 1, 1);
            printf("lseek end %lld, pread %zd '%c'\n", (long long)end, p, c);
            int g = dup(f);
            int h = fcntl(f, F_DUPFD_CLOEXEC, 10);
            printf("dup %d, F_DUPFD_CLOEXEC>=10 %d, FD_CLOEXEC %d\n", g > f, h >= 10, fcntl(h, F_GETFD));
            close(g);
            close(h);
            close(f);
        }
    }
    int dfd = open("/data/sub", O_RDONLY | O_DIRECTORY);
    struct stat at;
    int r = fstatat(dfd, "deep/d.txt", &at, 0);
    printf("fstatat via dirfd: %d size %lld\n", r, r == 0 ? (long long)at.st_size : -1LL);
    r = fstatat(dfd, "../link-a", &at, AT_SYMLINK_NOFOLLOW);
    printf("fstatat ../link-a nofollow: %d %c\n", r, r == 0 ? type_of(at.st_mode) : '-');
    printf("access(R_OK) %d, access(X_OK on 0644) %d\n", access("/data/a.txt", R_OK), access("/data/a.txt", X_OK) == 0 ? 0 : errno);
    printf("access(X_OK on 0755) %d\n", access("/data/run.sh", X_OK));
    close(dfd);
    return 0;
}
