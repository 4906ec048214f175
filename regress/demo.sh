#!/bin/sh
# make demo: run pop3d in the foreground on 127.0.0.1:10995 (POP3S) with a
# throwaway certificate and a user "demo" (password "demo") who has a few
# messages.  Everything lives in a scratch dir that is removed at the end.
# Needs root: pop3d binds, chroots and changes uids.

set -eu

cd "$(dirname "$0")/.."
build=${POP3D_BUILD:-$(pwd)/build}
port=10995
uid=61000

fail() {
	echo "demo: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || fail "must run as root (pop3d chroots and" \
    "changes uids); try: sudo make demo"
for f in pop3d pop3d-login pop3d-mailbox mkhash; do
	[ -x "$build/$f" ] || fail "$build/$f is missing; run make first"
done
command -v openssl >/dev/null 2>&1 || fail "openssl not found; run make deps"

scratch=$(mktemp -d /tmp/pop3d-demo.XXXXXXXX)
chmod 755 "$scratch"
cleanup() {
	rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# The unprivileged user of the login processes.
if ! getent passwd _pop3d >/dev/null 2>&1; then
	echo "demo: creating system user _pop3d"
	if command -v useradd >/dev/null 2>&1; then
		shell=/usr/sbin/nologin
		[ -x "$shell" ] || shell=/sbin/nologin
		useradd --system --no-create-home --home-dir /var/empty \
		    --shell "$shell" _pop3d || fail "useradd _pop3d failed"
	else
		fail "no user _pop3d and no useradd; create it by hand"
	fi
fi

# A throwaway self-signed certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -subj /CN=localhost -days 2 \
    -keyout "$scratch/key.pem" -out "$scratch/cert.pem" >/dev/null 2>&1 ||
    fail "openssl req failed"
chmod 600 "$scratch/key.pem"

mkdir -m 755 "$scratch/empty"

# User demo and a Maildir with a few messages.
maildir=$scratch/mail/demo/Maildir
mkdir -p "$maildir/new" "$maildir/cur" "$maildir/tmp"
chmod 755 "$scratch/mail"

msg() {
	cat >"$maildir/new/$1"
}

msg 1700000001.M1P1.demo <<'MSG'
From: pop3d <postmaster@example.org>
To: demo@example.org
Subject: Welcome to pop3d
Date: Tue, 14 Nov 2023 22:13:21 +0000
Message-ID: <1700000001.1@example.org>

Hello, demo.

This is message 1 of your Maildir, served by pop3d over TLS.
Try RETR 2 for a message with a line that starts with a dot.
MSG

msg 1700000002.M2P1.demo <<'MSG'
From: Alice <alice@example.org>
To: demo@example.org
Subject: Dots and lines
Date: Tue, 14 Nov 2023 22:20:00 +0000
Message-ID: <1700000002.2@example.org>

The next line starts with a dot, so pop3d sends it dot-stuffed
and your client takes the extra dot away again:
.this line starts with a dot
.
The line above is a single dot; it does not end the message.
MSG

msg 1700000003.M3P1.demo <<'MSG'
From: Bob <bob@example.org>
To: demo@example.org
Subject: Lunch?
Date: Wed, 15 Nov 2023 11:30:00 +0000
Message-ID: <1700000003.3@example.org>

Noodles at noon?

-- 
Bob
MSG

msg 1700000004.M4P1.demo <<'MSG'
From: Carol <carol@example.org>
To: demo@example.org
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=
Date: Thu, 16 Nov 2023 08:00:00 +0000
Message-ID: <1700000004.4@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

Grüße aus Zürich — 8-bit text passes through untouched.
MSG

chown -R "$uid:$uid" "$scratch/mail/demo"
chmod 700 "$maildir" "$maildir/new" "$maildir/cur" "$maildir/tmp"
chmod 600 "$maildir"/new/*

hash=$("$build/mkhash" bcrypt demo) || fail "mkhash failed"
printf 'demo:%s:%d:%d:%s:\n' "$hash" "$uid" "$uid" "$maildir" \
    >"$scratch/users"
chmod 600 "$scratch/users"

cat >"$scratch/pop3d.conf" <<CONF
# pop3d demo configuration
pki localhost cert "$scratch/cert.pem"
pki localhost key "$scratch/key.pem"
listen on 127.0.0.1 port $port tls pki localhost
auth passwd "$scratch/users"
user "_pop3d"
chroot "$scratch/empty"
login-processes 2
CONF

cat <<EOT
pop3d demo: user "demo", password "demo", 4 messages, POP3S on 127.0.0.1:$port
scratch dir: $scratch (removed when pop3d stops)

Try, from another terminal:

    curl -k pop3s://demo:demo@127.0.0.1:$port/1
    curl -k pop3s://demo:demo@127.0.0.1:$port/

    openssl s_client -quiet -crlf -connect 127.0.0.1:$port
    then type:
        USER demo
        PASS demo
        LIST
        RETR 1
        QUIT

Ctrl-C stops pop3d.
-------------------------------------------------------------------------
EOT

# Not exec: the trap removes the scratch dir once pop3d has stopped.
set +e
"$build/pop3d" -d -v -x "$build" -f "$scratch/pop3d.conf" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' INT TERM HUP
wait "$pid"
status=$?
# wait returns early when a trapped signal arrives: wait again.
while kill -0 "$pid" 2>/dev/null; do
	wait "$pid"
	status=$?
done
exit "$status"
