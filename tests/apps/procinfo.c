/* What /proc and /sys tell a process about itself, checked against what the syscalls say,
 * so that the output is the same on Linux (with /proc and /sys mounted) and
 * under selkie though the figures differ: its pid, parent, argv, environment, program,
 * working directory, fds, threads, memory map, the kernel's name and release, the cores it
 * may run on, and a child's /proc/<pid> that goes once it is reaped. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static char buf[1 << 16];

/* The whole file in buf (NUL-terminated); its length, or -errno. */
static long slurp(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    long n = 0, r;
    while ((r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += r;
    close(fd);
    buf[n] = 0;
    return n;
}

/* The value after "key:" in buf, tabs and spaces skipped. */
static const char *field(const char *key) {
    size_t k = strlen(key);
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (!strncmp(l, key, k) && l[k] == ':') {
            const char *v = l + k + 1;
            while (*v == ' ' || *v == '\t') v++;
            return v;
        }
    }
    return "";
}

static void say(const char *what, int ok) { printf("%-48s %s\n", what, ok ? "yes" : "NO"); }

/* How many cpus a list like "0-3,5" names. */
static int cpus_in(const char *s) {
    int n = 0;
    while (*s && *s != '\n') {
        int a = strtol(s, (char **)&s, 10), b = a;
        if (*s == '-') b = strtol(s + 1, (char **)&s, 10);
        n += b - a + 1;
        if (*s == ',') s++;
    }
    return n;
}

int main(int argc, char **argv) {
    char path[256], link[256];
    pid_t pid = getpid();

    /* /proc/self is this process. */
    ssize_t n = readlink("/proc/self", link, sizeof link - 1);
    link[n < 0 ? 0 : n] = 0;
    say("/proc/self links to getpid()", atoi(link) == pid);
    slurp("/proc/self/status");
    say("status Pid is getpid()", atoi(field("Pid")) == pid);
    say("status PPid is getppid()", atoi(field("PPid")) == getppid());
    say("status Uid is getuid()", (uid_t)atoi(field("Uid")) == getuid());
    say("status Threads is at least 1", atoi(field("Threads")) >= 1);
    slurp("/proc/self/stat");
    char state = 0;
    int spid = 0, sppid = 0;
    char *close_paren = strrchr(buf, ')');
    sscanf(buf, "%d", &spid);
    if (close_paren) sscanf(close_paren + 2, "%c %d", &state, &sppid);
    say("stat: pid, state R, ppid", spid == pid && state == 'R' && sppid == getppid());

    /* cmdline and environ. */
    long len = slurp("/proc/self/cmdline");
    long want = 0;
    for (int i = 0; i < argc; i++) want += strlen(argv[i]) + 1;
    int same = len == want;
    for (long off = 0, i = 0; same && i < argc; off += strlen(argv[i]) + 1, i++) same = !strcmp(buf + off, argv[i]);
    say("cmdline is argv", same);
    len = slurp("/proc/self/environ");
    int found = 0;
    for (long off = 0; off < len; off += strlen(buf + off) + 1) found |= !strcmp(buf + off, "HELLO=WORLD");
    say("environ has HELLO=WORLD", found);

    /* exe, cwd, fds, task, maps. */
    n = readlink("/proc/self/exe", link, sizeof link - 1);
    link[n < 0 ? 0 : n] = 0;
    say("exe is argv[0]", !strcmp(link, argv[0]));
    chdir("/data/sub");
    n = readlink("/proc/self/cwd", link, sizeof link - 1);
    link[n < 0 ? 0 : n] = 0;
    say("cwd follows chdir", !strcmp(link, "/data/sub"));
    chdir("/");
    int extra = open("/foo.txt", O_RDONLY);
    snprintf(path, sizeof path, "/proc/self/fd/%d", extra);
    n = readlink(path, link, sizeof link - 1);
    link[n < 0 ? 0 : n] = 0;
    say("fd link names the open file", !strcmp(link, "/foo.txt"));
    DIR *d = opendir("/proc/self/fd");
    int fds = 0, has_extra = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        fds++;
        has_extra |= atoi(e->d_name) == extra;
    }
    if (d) closedir(d);
    say("fd dir lists it (and 0, 1, 2, the dir)", has_extra && fds >= 5);
    close(extra);
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", pid);
    say("task/<tid>/stat exists for the main thread", slurp(path) > 0);
    slurp("/proc/self/maps");
    say("maps has [stack]", strstr(buf, "[stack]") != NULL);
    unsigned long lo, hi;
    int in_map = 0;
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (sscanf(l, "%lx-%lx", &lo, &hi) == 2 && (unsigned long)&buf >= lo && (unsigned long)&buf < hi) in_map = 1;
    say("maps covers a static variable", in_map);

    /* The kernel and the machine. */
    struct utsname u;
    uname(&u);
    slurp("/proc/sys/kernel/ostype");
    say("ostype is Linux", !strcmp(buf, "Linux\n"));
    slurp("/proc/sys/kernel/osrelease");
    buf[strcspn(buf, "\n")] = 0;
    say("osrelease is uname's release", !strcmp(buf, u.release));
    slurp("/proc/version");
    say("version names the release", strstr(buf, u.release) != NULL);
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    slurp("/sys/devices/system/cpu/online");
    say("cpu/online counts the affinity's cpus", cpus_in(buf) == CPU_COUNT(&set));
    slurp("/proc/cpuinfo");
    int procs = 0;
    for (char *p = buf; (p = strstr(p, "processor")); p++) procs++;
    say("cpuinfo has a processor per online cpu", procs == CPU_COUNT(&set));
    slurp("/proc/meminfo");
    long total = atol(field("MemTotal")), avail = atol(field("MemAvailable"));
    say("meminfo: MemAvailable <= MemTotal, both > 0", total > 0 && avail > 0 && avail <= total);
    slurp("/proc/uptime");
    say("uptime is positive", atof(buf) > 0);
    slurp("/proc/mounts");
    say("mounts has /proc", strstr(buf, " /proc proc ") != NULL);

    /* A child's /proc/<pid>, gone once reaped. */
    int pfd[2];
    pipe(pfd);
    pid_t child = fork();
    if (child == 0) {
        char c;
        close(pfd[1]);
        read(pfd[0], &c, 1); /* until the parent has looked */
        _exit(0);
    }
    snprintf(path, sizeof path, "/proc/%d/status", child);
    slurp(path);
    say("a child's status names its parent", atoi(field("PPid")) == pid);
    snprintf(path, sizeof path, "/proc/%d/cmdline", child);
    len = slurp(path);
    found = 0;
    for (long off = 0; off < len; off += strlen(buf + off) + 1) found |= !strcmp(buf + off, argv[0]);
    say("and its cmdline has our argv[0]", found);
    close(pfd[1]);
    waitpid(child, NULL, 0);
    snprintf(path, sizeof path, "/proc/%d", child);
    struct stat st;
    say("reaped, its /proc/<pid> is gone", stat(path, &st) < 0 && errno == ENOENT);
    return 0;
}
