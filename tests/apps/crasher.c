/* Crashes on purpose, as argv[1] says, after printing one line:
 *   trap      __builtin_trap (brk #0x3e8)        -> SIGTRAP on Linux
 *   abort     abort()                             -> SIGABRT
 *   udf       an undefined instruction            -> SIGILL
 *   overflow  unbounded recursion off the stack   -> SIGSEGV
 *   exec      a jump into non-executable data     -> SIGSEGV
 *   text      read(2) into its own code           -> EFAULT, and it goes on (status 0)
 * The seL4 root server must report each and keep every other app running. */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int depth(volatile char *prev) {
    volatile char pad[4096];
    pad[0] = prev ? prev[0] + 1 : 0;
    return depth(pad) + pad[0];
}

static unsigned int data_code[4] = {0xd65f03c0u}; /* ret, in .data */

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "";
    printf("crasher: %s\n", how);
    fflush(stdout);
    if (!strcmp(how, "trap"))
        __builtin_trap();
    else if (!strcmp(how, "abort"))
        abort();
    else if (!strcmp(how, "udf"))
        __asm__ volatile(".inst 0x00000001");
    else if (!strcmp(how, "overflow"))
        return depth(0);
    else if (!strcmp(how, "exec"))
        ((void (*)(void))data_code)();
    else if (!strcmp(how, "text")) {
        int fd = open("/foo.txt", O_RDONLY);
        long n = read(fd, (void *)main, 4);
        printf("read into text: %ld errno %d\n", n, n < 0 ? errno : 0);
        return 0;
    }
    printf("crasher: survived %s\n", how);
    return 3;
}
