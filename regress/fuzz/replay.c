/*
 * The main() of build/test_fuzz_*: run a fuzz target once on each file
 * of its seed corpus, regress/fuzz/corpus/TARGET, and of its saved
 * crashes, regress/fuzz/crashes/TARGET, or on the files and directories
 * given as arguments.  TARGET is the program's name without "test_".
 * Prints "PASS: TARGET file" after each input; an input that trips the
 * target kills the program (with a sanitizer report in a sanitizer
 * build), which regress/run.sh counts as a failure.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

#pragma weak LLVMFuzzerInitialize

static const char	*target;
static int		 failed, ran;

static void
run_file(const char *path)
{
	struct stat	 st;
	uint8_t		*buf;
	ssize_t		 n;
	size_t		 off;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		printf("FAIL: %s %s (%s)\n", target, path, strerror(errno));
		failed = 1;
		if (fd != -1)
			close(fd);
		return;
	}
	/* Exactly the input's size, so that an overread is caught. */
	if ((buf = malloc(st.st_size > 0 ? st.st_size : 1)) == NULL) {
		perror("malloc");
		exit(1);
	}
	for (off = 0; off < (size_t)st.st_size; off += n) {
		if ((n = read(fd, buf + off, st.st_size - off)) <= 0) {
			printf("FAIL: %s %s (short read)\n", target, path);
			failed = 1;
			free(buf);
			close(fd);
			return;
		}
	}
	close(fd);
	/* Said first: if the target dies, the log shows which input. */
	printf("# %s %s\n", target, path);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, st.st_size);
	free(buf);
	printf("PASS: %s %s\n", target, path);
	fflush(stdout);
	ran++;
}

static int
cmp_names(const void *a, const void *b)
{
	return (strcmp(*(char * const *)a, *(char * const *)b));
}

/* Every regular file of dir, in name order; -1 if dir is missing. */
static int
run_dir(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	char		**names = NULL, **nn, path[PATH_MAX];
	size_t		 n = 0, cap = 0, i;
	struct stat	 st;

	if ((d = opendir(dir)) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			if ((nn = reallocarray(names, cap,
			    sizeof(*names))) == NULL) {
				perror("reallocarray");
				exit(1);
			}
			names = nn;
		}
		if ((names[n++] = strdup(de->d_name)) == NULL) {
			perror("strdup");
			exit(1);
		}
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			run_file(path);
		free(names[i]);
	}
	free(names);
	return (0);
}

int
main(int argc, char *argv[])
{
	struct stat	 st;
	char		 dir[PATH_MAX];
	int		 i;

	if ((target = strrchr(argv[0], '/')) != NULL)
		target++;
	else
		target = argv[0];
	if (strncmp(target, "test_", 5) == 0)
		target += 5;
	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);

	if (argc > 1) {
		for (i = 1; i < argc; i++) {
			if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
				run_dir(argv[i]);
			else
				run_file(argv[i]);
		}
	} else {
		snprintf(dir, sizeof(dir), "regress/fuzz/corpus/%s", target);
		if (run_dir(dir) == -1) {
			printf("FAIL: %s (no seed corpus %s: %s)\n", target,
			    dir, strerror(errno));
			failed = 1;
		}
		/* None saved is the good case. */
		snprintf(dir, sizeof(dir), "regress/fuzz/crashes/%s", target);
		run_dir(dir);
	}
	if (ran == 0 && !failed) {
		printf("FAIL: %s (no input found)\n", target);
		failed = 1;
	}
	return (failed);
}
