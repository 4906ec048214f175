#!/bin/sh
# Run every test program and tally their results.
#
#	sh regress/run.sh [pattern ...]
#
# Test programs are the unit tests build/test_* and the end-to-end tests
# regress/e2e/test_*.py; with patterns, only those whose names contain one.
# Each prints lines "PASS: name" or "FAIL: name (reason)".  A program that
# exits non-zero, or runs out of time, without printing a FAIL line counts
# as one failure named after it, and so does one that prints no result.
# The last line is "N passed, M failed"; the exit status is 1 if M > 0.

set -u

cd "$(dirname "$0")/.." || exit 1

LIMIT=${POP3D_TEST_TIMEOUT:-300}

if [ "$(id -u)" -ne 0 ]; then
	echo "regress: must run as root: the end-to-end tests start pop3d," \
	    "which binds, chroots and changes uids" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

for t in timeout python3; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "regress: $t not found; run make deps" >&2
		echo "0 passed, 1 failed"
		exit 1
	fi
done

# Tests must not leave __pycache__ in the tree.
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE

# A sanitizer build (make sanitize) stops at the first report.  The
# daemons get no leak check: LeakSanitizer needs /proc and ptrace(2) at
# exit, which the chroot and the seccomp filter of the login and mailbox
# processes take away; the unit tests below get one.  color=never: the
# ioctl(2) asking whether stderr is a terminal is not in the seccomp
# filter, and would kill a sandboxed process before it said a word.  In
# a chroot frames are not symbolized: addr2line -f -e build/PROG OFFSET.
san=halt_on_error=1:abort_on_error=1:color=never
: "${ASAN_OPTIONS:=$san:detect_leaks=0}"
: "${UBSAN_OPTIONS:=$san:print_stacktrace=1}"
export ASAN_OPTIONS UBSAN_OPTIONS

work=$(mktemp -d "${TMPDIR:-/tmp}/pop3d-regress.XXXXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0
failures=

selected() {
	[ $# -eq 1 ] && return 0
	name=$1
	shift
	for pat in "$@"; do
		case "$name" in
		*"$pat"*)
			return 0
			;;
		esac
	done
	return 1
}

run_one() {
	name=$1
	shift
	echo "==> $name"
	start=$(date +%s)
	# The status goes through a file: a pipeline's is its last command's.
	{
		timeout -k 15 "$LIMIT" "$@" </dev/null 2>&1
		echo $? >"$work/rc"
	} | tee "$work/out"
	rc=$(cat "$work/rc")
	end=$(date +%s)
	p=$(grep -c '^PASS: ' "$work/out")
	f=$(grep -c '^FAIL: ' "$work/out")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		case "$rc" in
		124|137)
			why="timed out after ${LIMIT}s"
			;;
		*)
			why="exit status $rc"
			;;
		esac
		echo "FAIL: $name ($why)"
		f=1
	elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL: $name (printed no result)"
		f=1
	fi
	# A sanitizer report in the output (the daemons' log is checked by
	# regress/e2e/pop3dtest.py) fails the program whatever it printed.
	if grep -q -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
	    "$work/out"; then
		echo "FAIL: $name (sanitizer report)"
		[ "$f" -gt 0 ] || f=1
	fi
	if [ "$f" -gt 0 ]; then
		failures="$failures $name"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	echo "<== $name: $p PASS, $f FAIL, $((end - start))s"
}

ran=0
for t in build/test_*; do
	if [ ! -f "$t" ] || [ ! -x "$t" ]; then
		continue
	fi
	selected "$t" "$@" || continue
	ran=$((ran + 1))
	run_one "$t" env ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=1" "./$t"
done
for t in regress/e2e/test_*.py; do
	[ -f "$t" ] || continue
	selected "$t" "$@" || continue
	ran=$((ran + 1))
	run_one "$t" python3 "$t"
done

if [ "$ran" -eq 0 ]; then
	echo "FAIL: regress (no test programs found; run make regress)"
	failed=$((failed + 1))
fi

if [ -n "$failures" ]; then
	echo "failing programs:$failures"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
