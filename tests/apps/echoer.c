/* A small program for others to execve: prints its arguments on one line, says whether
 * the environment came through, and exits 9. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    printf("echoer:");
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    const char *e = getenv("FROM");
    printf("\nechoer: FROM=%s\n", e ? e : "(unset)");
    return 9;
}
