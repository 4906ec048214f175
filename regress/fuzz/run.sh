#!/bin/sh
# Build the fuzz targets with clang and libFuzzer and run each for a while.
#
#	sh regress/fuzz/run.sh [target ...]		(make fuzz)
#
# The Makefile passes the project's flags: CPPFLAGS, WARNINGS, LDADD; and
# BUILD, FUZZ_CC (clang), FUZZ_TIME (seconds per target, default 60).
# Every object is compiled with -fsanitize=fuzzer-no-link,address,undefined
# into $BUILD/fuzz/obj, never beside its source, so the normal build is
# left alone.  Each target fuzzes a copy of its seed corpus,
# regress/fuzz/corpus/TARGET, in $BUILD/fuzz/corpus/TARGET (kept, to go
# on from there next time), with regress/fuzz/TARGET.dict if there is one.
# Crashes land in $BUILD/fuzz/crashes/TARGET; minimize one with
#
#	build/fuzz/TARGET -minimize_crash=1 -runs=100000 CRASHFILE
#
# and keep the result in regress/fuzz/crashes/TARGET/, where
# build/test_fuzz_TARGET (make regress) replays it for good.
# Exit status 1 if any target failed to build or found a crash.

set -u

cd "$(dirname "$0")/../.." || exit 1

BUILD=${BUILD:-build}
FUZZ_CC=${FUZZ_CC:-clang}
FUZZ_TIME=${FUZZ_TIME:-60}
CPPFLAGS=${CPPFLAGS:--Icommon -D_GNU_SOURCE}
WARNINGS=${WARNINGS:--Wall -Wextra -Werror}
LDADD=${LDADD:-}
# SHA-256 (sha2.h): libmd on Linux, libc on OpenBSD, where it is empty.
LIBMD=${LIBMD--lmd}

OUT=$BUILD/fuzz
OBJ=$OUT/obj
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
SAN="$SAN -fno-omit-frame-pointer"
CFLAGS="-g -O1 -std=gnu11 $SAN -fsanitize=fuzzer-no-link"

# Each target: its name, the sources it links besides its own
# regress/fuzz/NAME.c and regress/fuzz/fuzzlib.c, and its libraries; the
# same lists, as objects, make build/test_fuzz_NAME in the Makefile.
targets() {
	t fuzz_sasl "login/base64.c login/plain.c"
	t fuzz_transform mailbox/transform.c
	t fuzz_parse "master/parse.c common/log.c"
	t fuzz_users "master/users.c common/log.c"
	t fuzz_imsg common/imsg.c
	t fuzz_master "master/login_procs.c master/session.c \
	    master/control.c common/imsgev.c common/imsg.c common/log.c \
	    common/addr.c" -levent
	t fuzz_login_cmd "login/authorization.c login/sasl.c login/stls.c \
	    login/base64.c login/plain.c common/iobuf.c common/log.c" \
	    "-ltls -levent"
	t fuzz_maildir "mailbox/uidl.c"
	t fuzz_mbox "mailbox/mbox.c mailbox/unfrom.c mailbox/transform.c \
	    mailbox/arena.c common/log.c" "$LIBMD"
}

if ! command -v "$FUZZ_CC" >/dev/null 2>&1; then
	echo "fuzz: $FUZZ_CC not found; run make deps" >&2
	exit 1
fi

mkdir -p "$OBJ" "$OUT/tmp" || exit 1

# Compile src into $OBJ unless the object is newer than it and than
# every header; prints the object's name.
compile() {
	src=$1
	o=$OBJ/$(echo "$src" | sed 's,/,_,g; s,\.c$,.o,')
	if [ -f "$o" ] && [ -z "$(find "$src" -newer "$o")" ] &&
	    [ -z "$(find common login master mailbox regress/fuzz \
	    -name '*.h' -newer "$o" 2>/dev/null | head -n 1)" ]; then
		echo "$o"
		return 0
	fi
	echo "fuzz: cc $src" >&2
	# shellcheck disable=SC2086
	$FUZZ_CC $CFLAGS $WARNINGS $CPPFLAGS -c -o "$o" "$src" >&2 ||
	    return 1
	echo "$o"
}

build() {
	name=$1 srcs=$2 libs=$3
	objs=
	for s in "regress/fuzz/$name.c" regress/fuzz/fuzzlib.c $srcs; do
		o=$(compile "$s") || return 1
		objs="$objs $o"
	done
	# shellcheck disable=SC2086
	$FUZZ_CC $SAN -fsanitize=fuzzer -o "$OUT/$name" $objs $libs $LDADD
}

# Is target $1 among $2...?  All are when none is named.
selected() {
	[ $# -eq 1 ] && return 0
	n=$1
	shift
	for x in "$@"; do
		[ "$x" = "$n" ] && return 0
	done
	return 1
}

# Sanitizer reports are errors; libFuzzer turns them into crash files.
ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
TMPDIR=$OUT/tmp
export ASAN_OPTIONS UBSAN_OPTIONS TMPDIR

failed=
summary=
# The selected targets, one "name|sources|libraries" a line.
t() {
	# shellcheck disable=SC2086
	selected "$1" $picked || return 0
	echo "$1|$2|${3:-}"
}
picked="$*"
targets >"$OUT/selected"
if [ ! -s "$OUT/selected" ]; then
	echo "fuzz: no such target: $*" >&2
	exit 1
fi

while IFS='|' read -r name srcs libs; do
	echo "==> $name: build"
	if ! build "$name" "$srcs" "$libs"; then
		failed="$failed $name(build)"
		continue
	fi
	corpus=$OUT/corpus/$name
	crashes=$OUT/crashes/$name
	mkdir -p "$corpus" "$crashes"
	cp regress/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
	dict=
	[ -f "regress/fuzz/$name.dict" ] && dict="-dict=regress/fuzz/$name.dict"
	echo "==> $name: fuzzing for ${FUZZ_TIME}s"
	start=$(date +%s)
	# -close_fd_mask=2: the targets' own logging is noise here; libFuzzer
	# and the sanitizers still report on a copy of stderr.
	# shellcheck disable=SC2086
	"$OUT/$name" -max_total_time="$FUZZ_TIME" -timeout=10 \
	    -close_fd_mask=2 -print_final_stats=1 $dict \
	    -artifact_prefix="$crashes/" "$corpus" \
	    </dev/null >"$OUT/$name.log" 2>&1
	rc=$?
	end=$(date +%s)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' \
	    "$OUT/$name.log" | tail -n 1)
	if [ "$rc" -ne 0 ]; then
		echo "FAIL: $name (exit status $rc after $((end - start))s," \
		    "see $OUT/$name.log)"
		# Once more on the first crash, with the target's own messages
		# (an invariant's) that -close_fd_mask=2 kept out of the log.
		crash=$(ls -t "$crashes" | head -n 1)
		if [ -n "$crash" ]; then
			echo "    crash: $crashes/$crash"
			log=$OUT/$name.crash.log
			"$OUT/$name" "$crashes/$crash" >"$log" 2>&1
			grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: )' "$log" |
			    head -n 4 | sed 's/^/    /'
			grep -E 'runtime error:' "$log" | head -n 2 |
			    sed 's/^/    /'
			grep -E '^ *#[0-9]+ ' "$log" | grep -v -E \
			    'fuzzer::|sanitizer|libc\.so|raise|abort' |
			    head -n 6 | sed 's/^ */    /'
		else
			tail -n 20 "$OUT/$name.log"
		fi
		failed="$failed $name"
	else
		echo "PASS: $name (${runs:-?} runs in $((end - start))s," \
		    "corpus $(ls "$corpus" | wc -l | tr -d ' ') inputs)"
	fi
	summary="$summary $name"
done <"$OUT/selected"

if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed"
	exit 1
fi
echo "fuzz: all passed:$summary"
exit 0
