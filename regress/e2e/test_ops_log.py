"""Logging (pop3d -d -v, the harness keeps stderr): one session's lines
(connection, TLS version and cipher, login, logout with counts), failed
logins with the peer address, and no password, right or wrong, ever in
the log: USER/PASS and AUTH PLAIN, in one line or after "+ "."""

import base64
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import opslib as O  # noqa: E402

ALICE_PW = "Pa55-unique-XYZ"
BOB_PW = "B0b-unique-QRS7"
WRONG = ["Wr0ng-unique-ABC", "Wr0ng-plain-DEF", "Wr0ng-step-GHI",
         "Wr0ng-nouser-JKL"]
USERS = [("alice", ALICE_PW, "bcrypt"), ("bob", BOB_PW, "yescrypt")]

MSGS = [b"Subject: one\n\nfirst message\n", b"Subject: two\n\nsecond\n"]


def plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" +
                            password.encode())


def lines_with(text, needle):
    return [l for l in text.splitlines() if needle in l]


def test_session(srv):
    with T.guard("session log"):
        start = O.log_size(srv)
        p = srv.pop3s("alice", ALICE_PW)
        peer = "127.0.0.1:%d" % p.sock.getsockname()[1]
        version = p.sock.version()
        cipher = p.sock.cipher()[0]
        _, lines, _ = p.retr(1)
        p.dele(2)
        p.quit()
        srv.wait_sessions_done()
        O.wait_log(srv, r"user alice logged out", start, 5)
        text = O.log_text(srv, start)
        mine = lines_with(text, peer)

        m = re.search(r"^login: (\d+): connection from %s on 127\.0\.0\.1:%d$"
                      % (re.escape(peer), srv.port), text, re.M)
        T.check("log: a 'connection from %s' line" % peer, m is not None,
                mine)
        conn = m.group(1) if m else "?"
        m = re.search(r"^login: %s: %s: (TLSv1\.[23]) (\S+)$" %
                      (conn, re.escape(peer)), text, re.M)
        T.check("log: a line with the TLS version and cipher", m is not None,
                mine)
        if m:
            T.check("log: the TLS version is the client's (%s)" % version,
                    m.group(1) == version, m.group(0))
            T.check("log: the cipher is the client's (%s)" % cipher,
                    m.group(2) == cipher, m.group(0))
        m = re.search(r"^master: session (\d+): %s: user alice logged in" %
                      re.escape(peer), text, re.M)
        T.check("log: a 'user alice logged in' line with the peer",
                m is not None, mine)
        sess = m.group(1) if m else "?"
        m = re.search(r"^master: session %s: user alice logged out: "
                      r"(\d+) retrieved, (\d+) deleted, (\d+) bytes$" % sess,
                      text, re.M)
        T.check("log: a logout line with retrieved, deleted and bytes",
                m is not None, text[-800:])
        if m:
            T.check("log: logout counts: 1 retrieved, 1 deleted",
                    (m.group(1), m.group(2)) == ("1", "1"), m.group(0))
            T.check("log: logout bytes cover the message",
                    int(m.group(3)) >= len(T.wire(MSGS[0])), m.group(0))


def test_failures(srv):
    with T.guard("failed login log"):
        start = O.log_size(srv)
        r, c = O.try_login(srv, "alice", WRONG[0], quit=False)
        try:
            peer = "127.0.0.1:%d" % c.sock.getsockname()[1]
            T.check("log: wrong password refused",
                    r.startswith(b"-ERR [AUTH]"), r)
        finally:
            c.close()
        m = O.wait_log(srv, r"%s: user alice: authentication failed" %
                       re.escape(peer), start, 5)
        T.check("log: 'authentication failed' with the peer address %s" %
                peer, m is not None, O.log_text(srv, start)[-600:])

        start = O.log_size(srv)
        r, c = O.try_login(srv, "nosuchuser", WRONG[3], quit=False)
        try:
            peer = "127.0.0.1:%d" % c.sock.getsockname()[1]
        finally:
            c.close()
        m = O.wait_log(srv, r"%s: user nosuchuser: authentication failed" %
                       re.escape(peer), start, 5)
        T.check("log: unknown user: 'authentication failed' with the peer",
                m is not None, O.log_text(srv, start)[-600:])


def test_plain(srv):
    with T.guard("AUTH PLAIN log"):
        with O.raw(srv) as c:
            c.readline()
            r = c.cmd(b"AUTH PLAIN " + plain("bob", WRONG[1]) + b"\r\n")
            T.check("AUTH PLAIN wrong password: -ERR [AUTH]",
                    r.startswith(b"-ERR [AUTH]"), r)
            r = c.cmd(b"AUTH PLAIN\r\n")
            T.check("AUTH PLAIN: '+ ' prompt", r.startswith(b"+"), r)
            r = c.cmd(plain("bob", WRONG[2]) + b"\r\n")
            T.check("AUTH PLAIN after '+ ', wrong password: -ERR [AUTH]",
                    r.startswith(b"-ERR [AUTH]"), r)
        with O.raw(srv) as c:
            c.readline()
            r = c.cmd(b"AUTH PLAIN " + plain("bob", BOB_PW) + b"\r\n")
            T.check("AUTH PLAIN right password: +OK", r.startswith(b"+OK"), r)
            c.cmd(b"QUIT\r\n")
        srv.wait_sessions_done()
        with O.raw(srv) as c:
            c.readline()
            r = c.cmd(b"AUTH PLAIN\r\n")
            r = c.cmd(plain("bob", BOB_PW) + b"\r\n")
            T.check("AUTH PLAIN after '+ ', right password: +OK",
                    r.startswith(b"+OK"), r)
            c.cmd(b"QUIT\r\n")
        srv.wait_sessions_done()
        # USER/PASS for bob too, right after a wrong one on one connection.
        with O.raw(srv) as c:
            c.readline()
            c.cmd(b"USER bob\r\n")
            c.cmd(b"PASS %s\r\n" % WRONG[0].encode())
            c.cmd(b"USER bob\r\n")
            r = c.cmd(b"PASS %s\r\n" % BOB_PW.encode())
            T.check("USER/PASS bob after a wrong PASS: +OK",
                    r.startswith(b"+OK"), r)
            c.cmd(b"QUIT\r\n")
        srv.wait_sessions_done()


def test_no_passwords(srv, when):
    # Give the processes a moment to write what they will.
    O.wait_log(srv, r"user bob logged out", 0, 5)
    log = O.log_bytes(srv)
    T.check("log %s: not empty (%d bytes)" % (when, len(log)),
            len(log) > 1000, "")
    for pw in [ALICE_PW, BOB_PW] + WRONG:
        T.check("log %s: the password %s appears nowhere" % (when, pw),
                pw.encode() not in log,
                [l for l in log.decode(errors="replace").splitlines()
                 if pw in l][:3])
    for user, pw in [("bob", BOB_PW), ("bob", WRONG[1]), ("bob", WRONG[2])]:
        blob = plain(user, pw)
        T.check("log %s: the AUTH PLAIN blob for %s/%s appears nowhere" %
                (when, user, pw), blob not in log and blob[:-4] not in log, "")


def main():
    with T.Server(users=USERS, control=True, conf_extra=O.NO_DELAY) as srv:
        for user in ("alice", "bob"):
            for i, m in enumerate(MSGS):
                srv.deliver(user, "17000000%02d.M%dP1.test" % (i, i), m)
        test_session(srv)
        test_failures(srv)
        test_plain(srv)
        test_no_passwords(srv, "while running")
        T.check("server still running at the end", srv.alive(), "")
        # And once everything is written: stop it here (the harness then
        # finds it gone).
        srv.seen.update(T.descendants(srv.pid))
        os.kill(srv.pid, signal.SIGTERM)
        try:
            srv.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        T.check("log: the log ends with the master exiting",
                O.log_text(srv).rstrip().endswith("master: exiting"),
                O.log_text(srv)[-200:])
        test_no_passwords(srv, "after SIGTERM")


T.run(main)
