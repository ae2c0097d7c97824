// double (C): reads a decimal integer from stdin (surrounding whitespace ignored) and
// writes twice it in decimal, with no newline. Anything else: a message on stderr, exit 2.
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, stdin);
	buf[n] = 0;
	char *end;
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	while (isspace((unsigned char)*end)) end++;
	if (end == buf || *end != 0 || errno != 0) {
		fputs("double: not an integer\n", stderr);
		return 2;
	}
	printf("%lld", v * 2);
	return 0;
}
