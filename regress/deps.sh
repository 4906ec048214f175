#!/bin/sh
# Install what pop3d needs to build and to run its tests, and nothing that
# is already there.  Debian/Ubuntu (apt-get) and OpenBSD (pkg_add).
# Idempotent: a second run only checks, and says "deps: all present".

set -u

have() {
	command -v "$1" >/dev/null 2>&1
}

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing: $*" >&2
		echo "deps: run as root to install them" >&2
		exit 1
	fi
}

debian() {
	pkgs="gcc make pkg-config byacc libtls-dev libbsd-dev libevent-dev
	    libsqlite3-dev libcrypt-dev openssl curl python3 mpop fetchmail
	    procps mandoc"
	# make fuzz: clang, libFuzzer and the sanitizer runtimes (Debian 12:
	# libclang-rt-dev pulls the libclang-rt-N-dev of the default clang;
	# older releases ship them with clang), llvm-symbolizer for stacks.
	pkgs="$pkgs clang llvm"
	if apt-cache show libclang-rt-dev >/dev/null 2>&1; then
		pkgs="$pkgs libclang-rt-dev"
	fi
	# Postfix, for regress/e2e/test_mta.py, unless another MTA is
	# installed: apt-get would remove that one to make room.
	mta=$(dpkg-query -W -f='${db:Status-Status} ${Package} ${Provides}\n' \
	    2>/dev/null | awk '$1 == "installed" && $2 != "postfix" &&
	    /mail-transport-agent/ { print $2 }')
	if [ -z "$mta" ]; then
		pkgs="$pkgs postfix"
	else
		echo "deps: not installing postfix, the MTA here is" $mta \
		    "(regress/e2e/test_mta.py will fail)" >&2
	fi
	missing=
	for p in $pkgs; do
		st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)
		[ "$st" = installed ] || missing="$missing $p"
	done
	missing=${missing# }
	if [ -z "$missing" ]; then
		echo "deps: all present"
		return 0
	fi
	need_root "$missing"
	echo "deps: installing $missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null || {
		echo "deps: apt-get update failed" >&2
		exit 1
	}
	# Postfix is for regress/e2e/test_mta.py, which runs a private
	# instance of its own: leave the system's unconfigured, and keep
	# packages from starting services (policy-rc.d answering 101) unless
	# a policy is already in place.
	echo "postfix postfix/main_mailer_type select No configuration" |
	    debconf-set-selections 2>/dev/null || true
	policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\n# pop3d deps.sh: no services\nexit 101\n' \
		    >"$policy" && chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
	fi
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing || {
		echo "deps: apt-get install failed" >&2
		exit 1
	}
	if [ -n "$policy" ]; then
		rm -f "$policy"
		trap - EXIT INT TERM
	fi
	# Check again: apt-get may succeed and still leave one out.
	for p in $missing; do
		st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)
		if [ "$st" != installed ]; then
			echo "deps: $p is still missing" >&2
			exit 1
		fi
	done
}

openbsd() {
	# libtls, libevent, yacc, openssl (LibreSSL) and ps are in base.
	# Each entry is package:command-it-installs.
	pkgs="sqlite3:sqlite3 python%3:python3 curl:curl mpop:mpop
	    fetchmail:fetchmail"
	missing=
	for e in $pkgs; do
		have "${e#*:}" || missing="$missing ${e%%:*}"
	done
	missing=${missing# }
	if [ -z "$missing" ]; then
		echo "deps: all present"
		return 0
	fi
	need_root "$missing"
	echo "deps: installing $missing"
	# shellcheck disable=SC2086
	pkg_add -I $missing || {
		echo "deps: pkg_add failed" >&2
		exit 1
	}
}

case "$(uname -s)" in
OpenBSD)
	openbsd
	;;
*)
	if have apt-get && have dpkg-query; then
		debian
	else
		echo "deps: no apt-get or pkg_add here; install by hand:" >&2
		echo "deps:   a C compiler, make, pkg-config, yacc, libtls," \
		    "libbsd, libevent, sqlite3, libxcrypt, openssl, curl," \
		    "python3, mpop, fetchmail, procps" >&2
		exit 1
	fi
	;;
esac
exit 0
