// sort: reads n (1..1000000, whitespace around it ignored), fills an array with n
// pseudo-random 32-bit integers (a fixed xorshift32 sequence, so every run sorts the same
// data), sorts it with a hand-written merge sort, and writes
// "sorted N checksum C" where C is sum(i * a[i]) mod 2^64 over the sorted array: a realistic
// CPU-bound program (loops, memory traffic, calls) whose result proves the sort ran.
// Bad input: exit 2.
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

static void merge_sort(uint32_t *a, uint32_t *tmp, size_t n) {
	if (n < 2)
		return;
	size_t h = n / 2;
	merge_sort(a, tmp, h);
	merge_sort(a + h, tmp, n - h);
	size_t i = 0, j = h, k = 0;
	while (i < h && j < n)
		tmp[k++] = a[i] <= a[j] ? a[i++] : a[j++];
	while (i < h)
		tmp[k++] = a[i++];
	while (j < n)
		tmp[k++] = a[j++];
	for (k = 0; k < n; k++)
		a[k] = tmp[k];
}

int main(void) {
	char buf[64];
	size_t got = fread(buf, 1, sizeof buf - 1, stdin);
	buf[got] = 0;
	char *end;
	long n = strtol(buf, &end, 10);
	if (end == buf || n < 1 || n > 1000000) {
		fputs("sort: want an integer 1..1000000\n", stderr);
		return 2;
	}
	uint32_t *a = malloc((size_t)n * sizeof *a), *tmp = malloc((size_t)n * sizeof *tmp);
	if (!a || !tmp) {
		fputs("sort: out of memory\n", stderr);
		return 1;
	}
	uint32_t x = 2463534242u;
	for (long i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		a[i] = x;
	}
	merge_sort(a, tmp, (size_t)n);
	uint64_t sum = 0;
	for (long i = 0; i < n; i++) {
		if (i > 0 && a[i - 1] > a[i]) {
			fputs("sort: not sorted\n", stderr);
			return 1;
		}
		sum += (uint64_t)i * a[i];
	}
	printf("sorted %ld checksum %llu", n, (unsigned long long)sum);
	return 0;
}
