// sleep: reads a number of milliseconds from stdin, sleeps that long (WASI poll_oneoff on the
// monotonic clock), then writes "slept N ms". Bad input: exit 2.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void) {
	char buf[64];
	size_t n = fread(buf, 1, sizeof buf - 1, stdin);
	buf[n] = 0;
	char *end;
	long ms = strtol(buf, &end, 10);
	if (end == buf || ms < 0) {
		fputs("sleep: want a number of milliseconds\n", stderr);
		return 2;
	}
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	printf("slept %ld ms", ms);
	return 0;
}
