// wordcount: reads text from stdin, writes {"lines":L,"words":W,"bytes":B} (as wc counts them).
#include <ctype.h>
#include <stdio.h>

int main(void) {
	char buf[65536];
	size_t n;
	unsigned long long lines = 0, words = 0, bytes = 0;
	int inword = 0;
	while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
		bytes += n;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)buf[i];
			if (c == '\n') lines++;
			if (isspace(c)) {
				inword = 0;
			} else if (!inword) {
				inword = 1;
				words++;
			}
		}
	}
	printf("{\"lines\":%llu,\"words\":%llu,\"bytes\":%llu}", lines, words, bytes);
	return 0;
}
