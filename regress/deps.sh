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
	    procps"
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
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing || {
		echo "deps: apt-get install failed" >&2
		exit 1
	}
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
