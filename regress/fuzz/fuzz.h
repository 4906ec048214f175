/*
 * Fuzz targets: each regress/fuzz/fuzz_*.c defines the libFuzzer entry
 * points below.  Built with clang -fsanitize=fuzzer by regress/fuzz/run.sh
 * (make fuzz); built with the project's compiler and regress/fuzz/replay.c
 * as build/test_fuzz_* (make unit), which runs the seed corpus and every
 * saved crash once, without fuzzing.
 */

#ifndef POP3D_FUZZ_H
#define POP3D_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	 LLVMFuzzerInitialize(int *, char ***);

/* An invariant of the code under test broke: print why and abort. */
__attribute__((__noreturn__)) void fuzz_fail(const char *, ...)
	    __attribute__((__format__ (printf, 1, 2)));

#define FUZZ_ASSERT(cond) do {						\
	if (!(cond))							\
		fuzz_fail("%s:%d: %s", __FILE__, __LINE__, #cond);	\
} while (0)

/*
 * A scratch file name under $TMPDIR for targets that read files; the
 * file is written anew by fuzz_file_write() and removed at exit.
 */
const char	*fuzz_file_write(const char *, const uint8_t *, size_t);

/*
 * One non-blocking sendmsg(2) of len bytes on socket s, with a fresh
 * descriptor of /dev/null attached if withfd; as sendmsg returns.
 */
ssize_t		 fuzz_send(int, const void *, size_t, int);

#endif /* POP3D_FUZZ_H */
