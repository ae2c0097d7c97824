// fib: reads n (0..90) from stdin, writes fib(n) in decimal, computed by naive recursion so
// that it is CPU-bound (n=30: about 1.6 million calls). Bad input: exit 2.
#include <stdio.h>
#include <stdlib.h>

static unsigned long long fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(void) {
	char buf[64];
	size_t n = fread(buf, 1, sizeof buf - 1, stdin);
	buf[n] = 0;
	char *end;
	long v = strtol(buf, &end, 10);
	if (end == buf || v < 0 || v > 90) {
		fputs("fib: want an integer 0..90\n", stderr);
		return 2;
	}
	printf("%llu", fib((unsigned)v));
	return 0;
}
