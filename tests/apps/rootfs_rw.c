/* The writable rootfs a container gets: changes image files (append, truncate, chmod,
 * chown, utimensat), creates and removes files and directories anywhere, renames (with
 * renameat2's flags), hard and symbolic links, O_TMPFILE named by linkat, and the errors
 * Linux gives for what it refuses. Prints one line per step, the same on Linux.
 * With "fill N": writes up to N KiB to /var/fill in 64 KiB chunks and says where it
 * stopped (the rootfs quota test). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(what, call) do { errno = 0; long r_ = (long)(call); \
    printf("%-44s %s\n", what, r_ < 0 ? strerror(errno) : "ok"); } while (0)

static void cat(const char *path) {
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("cat %s: %s\n", path, strerror(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = 0;
    for (char *c = buf; *c; c++)
        if (*c == '\n') *c = '|';
    printf("cat %s: \"%s\"\n", path, buf);
}

static void stat_of(const char *path) {
    struct stat st;
    if (lstat(path, &st)) {
        printf("stat %s: %s\n", path, strerror(errno));
        return;
    }
    printf("stat %s: mode %o uid %u gid %u", path, st.st_mode, st.st_uid, st.st_gid);
    if (!S_ISDIR(st.st_mode)) printf(" size %lld nlink %u", (long long)st.st_size, (unsigned)st.st_nlink);
    printf("\n");
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void ls(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        printf("ls %s: %s\n", dir, strerror(errno));
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("ls %s:", dir);
    for (int i = 0; i < n; i++) printf(" %s", names[i]);
    printf("\n");
}

static int put(const char *path, const char *text, int flags) {
    int fd = open(path, O_WRONLY | flags, 0644);
    if (fd < 0) return -1;
    int r = write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -1;
    close(fd);
    return r;
}

static int fill(long kib) {
    static char chunk[64 << 10];
    memset(chunk, 'f', sizeof chunk);
    mkdir("/var", 0755);
    int fd = open("/var/fill", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        printf("open /var/fill: %s\n", strerror(errno));
        return 1;
    }
    long done = 0;
    while (done < kib) {
        ssize_t n = write(fd, chunk, sizeof chunk);
        if (n < 0) {
            printf("stopped after %ld KiB: %s\n", done, strerror(errno));
            break;
        }
        done += n >> 10;
    }
    if (done >= kib) printf("wrote %ld KiB\n", done);
    close(fd);
    /* The app goes on: what it wrote is there, and deleting it gives the room back. */
    struct stat st;
    stat("/var/fill", &st);
    printf("/var/fill holds %lld KiB\n", (long long)st.st_size >> 10);
    CHECK("unlink /var/fill", unlink("/var/fill"));
    CHECK("write a small file after", put("/var/after", "after\n", O_CREAT));
    cat("/var/after");
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "fill")) return fill(atol(argv[2]));

    /* Image files change in place (copied up on the first write). */
    CHECK("append to /foo.txt", put("/foo.txt", "more\n", O_APPEND));
    cat("/foo.txt");
    CHECK("truncate /bar.txt to 2", truncate("/bar.txt", 2));
    cat("/bar.txt");
    CHECK("O_TRUNC /data/sub/e.txt (mode 0444, as root)", put("/data/sub/e.txt", "e\n", O_TRUNC));
    cat("/data/sub/e.txt");
    /* a.txt and hard.txt are one inode in the image. */
    CHECK("write /data/hard.txt", put("/data/hard.txt", "ALPHA\n", O_TRUNC));
    cat("/data/a.txt");
    CHECK("chmod /data/a.txt 0600", chmod("/data/a.txt", 0600));
    CHECK("chown /data/a.txt 1000:1001", chown("/data/a.txt", 1000, 1001));
    stat_of("/data/hard.txt");
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1234567890, 0}};
    CHECK("utimensat /foo.txt", utimensat(AT_FDCWD, "/foo.txt", ts, 0));
    struct stat st;
    stat("/foo.txt", &st);
    printf("mtime of /foo.txt: %lld\n", (long long)st.st_mtime);

    /* New files and directories anywhere. */
    CHECK("mkdir /var", mkdir("/var", 0755));
    CHECK("mkdir /var/lib", mkdir("/var/lib", 0755));
    CHECK("mkdir /var/lib/app", mkdir("/var/lib/app", 0750));
    CHECK("create /var/lib/app/state", put("/var/lib/app/state", "v1\n", O_CREAT | O_EXCL));
    CHECK("create it again with O_EXCL", put("/var/lib/app/state", "v1\n", O_CREAT | O_EXCL));
    stat_of("/var/lib/app");
    stat_of("/var/lib/app/state");

    /* rename */
    CHECK("rename state -> state.old", rename("/var/lib/app/state", "/var/lib/app/state.old"));
    CHECK("rename /var/lib/app -> /var/lib/app2", rename("/var/lib/app", "/var/lib/app2"));
    ls("/var/lib");
    ls("/var/lib/app2");
    CHECK("rename /data -> /data/sub/x (below itself)", rename("/data", "/data/sub/x"));
    CHECK("rename /foo.txt over /data (a directory)", rename("/foo.txt", "/data"));
    CHECK("rename /data over /foo.txt (a file)", rename("/data", "/foo.txt"));
    CHECK("rename /var/lib/app2 over /data (not empty)", rename("/var/lib/app2", "/data"));
    CHECK("rename missing", rename("/nothing", "/x"));
    CHECK("rename /bar.txt over /foo.txt", rename("/bar.txt", "/foo.txt"));
    cat("/foo.txt");
    cat("/bar.txt");
    CHECK("renameat2 NOREPLACE over /data/a.txt",
          syscall(SYS_renameat2, AT_FDCWD, "/foo.txt", AT_FDCWD, "/data/a.txt", 1));
    CHECK("renameat2 EXCHANGE /foo.txt /data/a.txt",
          syscall(SYS_renameat2, AT_FDCWD, "/foo.txt", AT_FDCWD, "/data/a.txt", 2));
    cat("/foo.txt");
    cat("/data/a.txt");
    CHECK("renameat2 EXCHANGE with a missing file",
          syscall(SYS_renameat2, AT_FDCWD, "/foo.txt", AT_FDCWD, "/nothing", 2));

    /* links */
    CHECK("link /data/hard.txt /data/third", link("/data/hard.txt", "/data/third"));
    stat_of("/data/third");
    CHECK("link a directory", link("/data/sub", "/data/sub2"));
    CHECK("link over an existing name", link("/data/hard.txt", "/foo.txt"));
    CHECK("symlink hard.txt /data/sym", symlink("hard.txt", "/data/sym"));
    char target[64] = {0};
    readlink("/data/sym", target, sizeof target - 1);
    printf("readlink /data/sym: %s\n", target);
    cat("/data/sym");

    /* removal */
    CHECK("unlink /data/link-a", unlink("/data/link-a"));
    CHECK("rmdir /data/sub/deep (not empty)", rmdir("/data/sub/deep"));
    CHECK("unlink /data/sub/deep/d.txt", unlink("/data/sub/deep/d.txt"));
    CHECK("rmdir /data/sub/deep", rmdir("/data/sub/deep"));
    CHECK("unlink a directory", unlink("/data/sub"));
    CHECK("rmdir a file", rmdir("/data/sym"));
    ls("/data");
    ls("/data/sub");

    /* O_TMPFILE, then a name for it */
    int fd = open("/data", O_TMPFILE | O_RDWR, 0640);
    if (fd < 0) {
        printf("O_TMPFILE: %s\n", strerror(errno));
    } else {
        write(fd, "anonymous\n", 10);
        fstat(fd, &st);
        printf("O_TMPFILE: nlink %u size %lld\n", (unsigned)st.st_nlink, (long long)st.st_size);
        CHECK("linkat AT_EMPTY_PATH /data/named", linkat(fd, "", AT_FDCWD, "/data/named", AT_EMPTY_PATH));
        close(fd);
        cat("/data/named");
    }
    /* An unlinked file stays readable through its fd. */
    fd = open("/data/third", O_RDONLY);
    CHECK("unlink /data/third while open", unlink("/data/third"));
    char buf[16] = {0};
    read(fd, buf, sizeof buf - 1);
    fstat(fd, &st);
    printf("still open: \"%.6s\" nlink %u\n", buf, (unsigned)st.st_nlink);
    close(fd);
    stat_of("/data/hard.txt");

    /* A fifo: the reader's open waits for the writer, and the bytes go through. */
    CHECK("mkfifo /var/fifo", mkfifo("/var/fifo", 0600));
    stat_of("/var/fifo");
    pid_t child = fork();
    if (child == 0) {
        int w = open("/var/fifo", O_WRONLY);
        write(w, "through the fifo\n", 17);
        close(w);
        _exit(0);
    }
    fd = open("/var/fifo", O_RDONLY);
    memset(buf, 0, sizeof buf);
    char line[32] = {0};
    ssize_t got = 0, r;
    while ((r = read(fd, line + got, sizeof line - 1 - got)) > 0) got += r;
    close(fd);
    waitpid(child, NULL, 0);
    printf("fifo gave: %s", line);
    errno = 0;
    printf("O_NONBLOCK writer without a reader: %s\n", open("/var/fifo", O_WRONLY | O_NONBLOCK) < 0 ? strerror(errno) : "opened");
    return 0;
}
