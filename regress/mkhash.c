/*
 * mkhash: print a crypt(3) hash of a password, for the tests and the demo.
 *
 *	mkhash bcrypt|yescrypt|sha512 password
 *
 * bcrypt uses cost 8 so that the tests stay fast.  On OpenBSD only bcrypt
 * is available (crypt_newhash(3)); elsewhere libxcrypt does all three.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __OpenBSD__
#include <pwd.h>		/* crypt_newhash(3) */
#else
#include <crypt.h>
#endif

static void	usage(void) __attribute__((__noreturn__));
static int	mkhash(const char *, const char *, char *, size_t);

static void
usage(void)
{
	fprintf(stderr, "usage: mkhash bcrypt|yescrypt|sha512 password\n");
	exit(2);
}

#ifdef __OpenBSD__
static int
mkhash(const char *method, const char *pass, char *out, size_t outlen)
{
	if (strcmp(method, "bcrypt") != 0) {
		fprintf(stderr, "mkhash: %s: not supported here\n", method);
		return -1;
	}
	if (crypt_newhash(pass, "bcrypt,8", out, outlen) == -1) {
		perror("mkhash: crypt_newhash");
		return -1;
	}
	return 0;
}
#else
static int
mkhash(const char *method, const char *pass, char *out, size_t outlen)
{
	struct crypt_data	 data;
	char			 setting[CRYPT_GENSALT_OUTPUT_SIZE];
	const char		*prefix;
	unsigned long		 count;
	char			*hash;
	int			 n;

	if (strcmp(method, "bcrypt") == 0) {
		prefix = "$2b$";
		count = 8;
	} else if (strcmp(method, "yescrypt") == 0) {
		prefix = "$y$";
		count = 0;
	} else if (strcmp(method, "sha512") == 0) {
		prefix = "$6$";
		count = 0;
	} else {
		fprintf(stderr, "mkhash: %s: unknown method\n", method);
		return -1;
	}

	if (crypt_gensalt_rn(prefix, count, NULL, 0, setting,
	    sizeof(setting)) == NULL || setting[0] == '*') {
		perror("mkhash: crypt_gensalt_rn");
		return -1;
	}
	memset(&data, 0, sizeof(data));
	hash = crypt_rn(pass, setting, &data, sizeof(data));
	if (hash == NULL || hash[0] == '*') {
		perror("mkhash: crypt_rn");
		return -1;
	}
	/* No strlcpy: this links with libcrypt alone. */
	n = snprintf(out, outlen, "%s", hash);
	explicit_bzero(&data, sizeof(data));
	if (n < 0 || (size_t)n >= outlen) {
		fprintf(stderr, "mkhash: hash too long\n");
		return -1;
	}
	return 0;
}
#endif

int
main(int argc, char *argv[])
{
	char	hash[256];

	if (argc != 3)
		usage();
	if (mkhash(argv[1], argv[2], hash, sizeof(hash)) == -1)
		return 1;
	printf("%s\n", hash);
	return 0;
}
