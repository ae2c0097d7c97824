// double (C reactor, clang -mexec-model=reactor): the same function as double.c, exported as
// run instead of main. wasi-libc's _initialize runs the constructors once, at
// pre-initialization; every task starts from that snapshot and calls run.
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((export_name("run"))) void run(void) {
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, stdin);
	buf[n] = 0;
	char *end;
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	while (isspace((unsigned char)*end)) end++;
	if (end == buf || *end != 0 || errno != 0) {
		fputs("double: not an integer\n", stderr);
		exit(2);
	}
	printf("%lld", v * 2);
	fflush(stdout);
}
