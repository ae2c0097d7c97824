// open_file: tries to read host files (/etc/passwd, the working directory, and the raw WASI
// path_open on the first descriptors a runtime would preopen). Prints what it read and exits 0
// if anything worked; exits 1 with "denied" on stderr when nothing did.
// Expected: exit (code 1), stdout empty.
#include <stdio.h>
#include <wasi/api.h>

int main(void) {
	const char *paths[] = {"/etc/passwd", "etc/passwd", "go.mod", ".", "/"};
	for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) {
		FILE *f = fopen(paths[i], "r");
		if (f) {
			char buf[256];
			size_t n = fread(buf, 1, sizeof buf, f);
			printf("read %s: %.*s", paths[i], (int)n, buf);
			return 0;
		}
	}
	for (__wasi_fd_t fd = 3; fd < 16; fd++) {
		__wasi_fd_t out;
		if (__wasi_path_open(fd, 0, "etc/passwd", 0, __WASI_RIGHTS_FD_READ, 0, 0, &out) == 0) {
			printf("opened etc/passwd under fd %u", fd);
			return 0;
		}
	}
	fputs("denied\n", stderr);
	return 1;
}
