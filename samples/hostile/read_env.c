// read_env: prints the host's environment (PATH, HOME, anything). Exits 0 if it saw any
// variable; exits 1 with "no environment" on stderr when it saw none.
// Expected: exit (code 1), stdout empty.
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(void) {
	int seen = 0;
	for (char **e = environ; e && *e; e++) {
		printf("%s\n", *e);
		seen = 1;
	}
	const char *names[] = {"PATH", "HOME", "USER", "FAAS_REDIS_URL"};
	for (unsigned i = 0; i < sizeof names / sizeof *names; i++) {
		const char *v = getenv(names[i]);
		if (v) {
			printf("%s=%s\n", names[i], v);
			seen = 1;
		}
	}
	if (!seen) {
		fputs("no environment\n", stderr);
		return 1;
	}
	return 0;
}
