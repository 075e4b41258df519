/* Floating point across syscalls and context switches: keeps doubles live in FP/SIMD
 * registers while making syscalls (each one a switch to the seL4 root server, which runs
 * with its FPU off) and prints the results with %f. Two copies run side by side. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int seed = argc > 1 ? atoi(argv[1]) : 1;
    double acc = 0, prod = 1.0;
    for (int i = 1; i <= 2000; i++) {
        double x = (double)(i * seed) / 7.0;
        acc += sqrt(x) * 0.5;
        prod *= 1.0 + 1.0 / (x + 10.0);
        if (i % 100 == 0) {
            getppid(); /* a syscall with doubles live */
            printf("step %d: acc %.6f prod %.6f\n", i, acc, prod);
        }
    }
    printf("done %.9f\n", acc / prod);
    return 0;
}
