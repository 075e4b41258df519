/* The seed's hello: prints argv and $HELLO, reads /foo.txt and /bar.txt. */
#include <stdio.h>
#include <stdlib.h>

static void show(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("%s: cannot open\n", path);
        return;
    }
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    printf("%s: %s", path, buf);
    fclose(f);
}

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        printf("argv[%d] = %s\n", i, argv[i]);
    const char *hello = getenv("HELLO");
    printf("HELLO = %s\n", hello ? hello : "(unset)");
    show("/foo.txt");
    show("/bar.txt");
    return 0;
}
