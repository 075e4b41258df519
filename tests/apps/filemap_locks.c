/* Shared file mappings across fork, a process-shared semaphore in one (its futex wakes
 * the other process), and fcntl byte-range locks between two processes.
 * Prints what it sees; the same lines as on Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int lk(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
    int r = fcntl(fd, cmd, &fl);
    return r < 0 ? -errno : 0;
}

static void getlk(const char *what, int fd, short type, off_t start, off_t len, pid_t who) {
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
    if (fcntl(fd, F_GETLK, &fl) < 0) {
        printf("%s: F_GETLK %s\n", what, strerror(errno));
        return;
    }
    printf("%s: type %s start %ld len %ld holder %s\n", what, fl.l_type == F_UNLCK ? "unlocked" : fl.l_type == F_WRLCK ? "write" : "read",
           (long)fl.l_start, (long)fl.l_len, fl.l_type == F_UNLCK ? "-" : fl.l_pid == who ? "expected" : "other");
}

static void mappings(void) {
    int fd = open("/mapped.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "hello", 5) != 5 || ftruncate(fd, 8192) != 0) {
        perror("setup");
        return;
    }
    char *m = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        perror("mmap MAP_SHARED");
        return;
    }
    printf("mapping shows: %.5s\n", m);
    int p[2], q[2];
    pipe(p);
    pipe(q);
    pid_t c = fork();
    if (c == 0) {
        memcpy(m + 100, "from the child", 14);
        pwrite(fd, "written to the file", 19, 200);
        write(p[1], "x", 1);
        char b;
        read(q[0], &b, 1);
        _exit(0);
    }
    char b;
    read(p[0], &b, 1);
    printf("parent sees the child's store: %.14s\n", m + 100);
    printf("parent sees the child's write: %.19s\n", m + 200);
    memcpy(m + 300, "from the parent", 15);
    char buf[32] = {0};
    pread(fd, buf, 15, 300);
    printf("read() sees the parent's store: %s\n", buf);
    write(q[1], "y", 1);
    waitpid(c, 0, 0);
    memcpy(m, "J", 1);
    munmap(m, 8192);
    pread(fd, buf, 5, 0);
    buf[5] = 0;
    printf("after munmap the file has: %s\n", buf);
    printf("size: %ld\n", (long)lseek(fd, 0, SEEK_END));
    close(fd);
}

static void locks(void) {
    int fd = open("/locked.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
    int p[2], q[2];
    pipe(p);
    pipe(q);
    printf("parent write-locks 0..10: %d\n", lk(fd, F_SETLK, F_WRLCK, 0, 10));
    pid_t parent = getpid();
    pid_t c = fork();
    if (c == 0) {
        printf("child F_SETLK 5..10: %s\n", lk(fd, F_SETLK, F_WRLCK, 5, 5) == -EAGAIN || lk(fd, F_SETLK, F_WRLCK, 5, 5) == -EACCES ? "refused" : "granted");
        getlk("child asks for 5..6", fd, F_RDLCK, 5, 1, parent);
        printf("child read-locks 20..30: %d\n", lk(fd, F_SETLK, F_RDLCK, 20, 10));
        fflush(stdout);
        write(p[1], "x", 1);
        char b;
        read(q[0], &b, 1);
        int r = lk(fd, F_SETLKW, F_WRLCK, 0, 1);
        printf("child waited and got 0..1: %d\n", r);
        getlk("child asks after the wait", fd, F_WRLCK, 0, 0, parent);
        fflush(stdout);
        _exit(0);
    }
    char b;
    read(p[0], &b, 1);
    getlk("parent asks for 25..26", fd, F_WRLCK, 25, 1, c);
    printf("parent read-locks 25..26 beside the child: %d\n", lk(fd, F_SETLK, F_RDLCK, 25, 1));
    write(q[1], "y", 1);
    usleep(200000);
    /* Closing any other fd of the file drops the parent's locks: the child gets its own. */
    int other = open("/locked.dat", O_RDONLY);
    close(other);
    int st;
    waitpid(c, &st, 0);
    printf("child exit %d\n", WEXITSTATUS(st));
    getlk("parent asks after the child ended", fd, F_WRLCK, 0, 0, c);
    int a = open("/locked.dat", O_RDWR), d = open("/locked.dat", O_RDWR);
    printf("OFD lock on one open file: %d\n", lk(a, F_OFD_SETLK, F_WRLCK, 0, 4));
    printf("OFD lock on another: %s\n", lk(d, F_OFD_SETLK, F_WRLCK, 2, 1) == -EAGAIN ? "EAGAIN" : "other");
    close(a);
    printf("after its close: %d\n", lk(d, F_OFD_SETLK, F_WRLCK, 2, 1));
}

/* A process-shared semaphore in a shared mapping of a file: the parent waits on it,
 * the child posts it after a sleep (a syscall: its view of the mapping meets the file's). */
static void semaphore(void) {
    int fd = open("/sem.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, 4096) != 0) {
        perror("setup");
        return;
    }
    sem_t *sem = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sem == MAP_FAILED || sem_init(sem, 1, 0) != 0) {
        perror("sem");
        return;
    }
    pid_t c = fork();
    if (c == 0) {
        usleep(200000);
        sem_post(sem);
        _exit(0);
    }
    int r = sem_wait(sem);
    printf("sem_wait in the parent: %s\n", r == 0 ? "woken by the child's post" : strerror(errno));
    waitpid(c, 0, 0);
    int v = -1;
    sem_getvalue(sem, &v);
    printf("semaphore value after: %d\n", v);
    munmap(sem, 4096);
    close(fd);
}

/* A child spins on a word of a shared mapping, making no syscall, until the parent's store
 * shows (Linux; seL4, where both map the same frames; selkie's emulator, where both CPUs
 * map the same host pages). */
static int spin(void) {
    int fd = open("/spin.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, 4096) != 0) {
        perror("setup");
        return 1;
    }
    volatile int *flag = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (flag == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    int p[2];
    pipe(p);
    pid_t c = fork();
    if (c == 0) {
        /* Its last syscall before the spin: the parent stores only after it. */
        write(p[1], "s", 1);
        long n = 0;
        while (flag[0] == 0 && n < 300000000L)
            n++;
        flag[1] = flag[0] == 42 ? 1 : 2;
        _exit(0);
    }
    char b;
    read(p[0], &b, 1);
    flag[0] = 42;
    int st;
    waitpid(c, &st, 0);
    printf("the child %s\n", flag[1] == 1 ? "saw the parent's store without a syscall" : "never saw the parent's store");
    printf("the parent sees the child's store: %s\n", flag[1] ? "yes" : "no");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "spin")) return spin();
    mappings();
    semaphore();
    locks();
    return 0;
}
