"""The control socket and pop3ctl: the socket's mode, show sessions, show
stats after a scripted session, log verbose/brief, kick, usage errors,
refusal of non-root users; pop3ctl encrypt."""

import os
import re
import socket
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import opslib as O  # noqa: E402

USERS = [("alice", "alice-pw", "bcrypt"), ("bob", "bob-pw", "bcrypt")]

MSGS = [b"Subject: one\n\nfirst message\n",
        b"Subject: two\n\nsecond message\n",
        b"Subject: three\n\nthird message\n"]


def deliver_all(srv, user, tag):
    for i, m in enumerate(MSGS):
        srv.deliver(user, "17000%05d.M%dP%s.test" % (i, i, tag), m)


def err_text(e):
    a = e.args[0] if e.args else b""
    return a if isinstance(a, bytes) else str(a).encode()


def test_socket(srv):
    with T.guard("control socket file"):
        st = os.lstat(srv.ctl_sock)
        T.check("control socket is a socket", stat.S_ISSOCK(st.st_mode),
                oct(st.st_mode))
        T.check("control socket mode 0600", stat.S_IMODE(st.st_mode) ==
                0o600, oct(stat.S_IMODE(st.st_mode)))
        T.check("control socket owned by root", st.st_uid == 0, st.st_uid)


def test_sessions(srv):
    with T.guard("show sessions"):
        r = O.ctl(srv, "show", "sessions")
        T.check("show sessions with none: exit 0", r.rc == 0, r)
        T.check("show sessions with none: 0 sessions",
                re.search(r"^0 sessions$", r.out, re.M) is not None, r)

        p = srv.pop3s("alice")
        try:
            port = p.sock.getsockname()[1]
            mbox = T.wait_for(srv.mailbox_pids, 5) or []
            r = O.ctl(srv, "show", "sessions")
            T.check("show sessions: exit 0", r.rc == 0, r)
            m = re.search(r"^\d+ alice 127\.0\.0\.1:%d pid (\d+) since \S+"
                          % port, r.out, re.M)
            T.check("show sessions: a line with alice, her address and "
                    "port", m is not None, "%r; want port %d" % (r, port))
            T.check("show sessions: the pid is alice's mailbox process",
                    m is not None and int(m.group(1)) in mbox,
                    "%r; mailbox pids %s" % (r, mbox))
            T.check("show sessions: 1 sessions",
                    re.search(r"^1 sessions$", r.out, re.M) is not None, r)
        finally:
            p.quit()
    srv.wait_sessions_done()


def stats(srv):
    r = O.ctl(srv, "show", "stats")
    st = O.parse_stats(r.out)
    if r.rc != 0 or st is None:
        raise AssertionError("show stats: %r" % r)
    return st


def test_stats(srv):
    with T.guard("show stats"):
        r = O.ctl(srv, "show", "stats")
        T.check("show stats: exit 0", r.rc == 0, r)
        T.check("show stats: every line parses",
                O.parse_stats(r.out) is not None, r)
        s0 = stats(srv)

        reply = O.login_reply(srv, "alice", "not-alice-pw")
        T.check("stats: a failed login is refused",
                reply.startswith(b"-ERR [AUTH]"), reply)

        p = srv.pop3s("alice")
        mid = stats(srv)
        T.check("stats during a session: 1 now", mid["now"] == 1, mid)
        _, lines, _ = p.retr(1)
        T.check("stats session: RETR 1",
                T.joined(lines) == T.expected(MSGS[0]), lines[:3])
        p.dele(2)
        p.quit()
        srv.wait_sessions_done()
        s1 = T.wait_for(lambda: (lambda s: s if s["now"] == 0 else None)(
            stats(srv)), 5) or stats(srv)

        def delta(k):
            return s1[k] - s0[k]
        T.check("stats: logins ok +1", delta("ok") == 1, (s0, s1))
        T.check("stats: logins failed +1", delta("failed") == 1, (s0, s1))
        T.check("stats: sessions in all +1", delta("sessions") == 1,
                (s0, s1))
        T.check("stats: 0 sessions now after QUIT", s1["now"] == 0, s1)
        T.check("stats: retrieved +1", delta("retrieved") == 1, (s0, s1))
        T.check("stats: deleted +1", delta("deleted") == 1, (s0, s1))
        body = len(T.wire(MSGS[0]))
        T.check("stats: bytes grew by at least the message (%d) and not "
                "much more" % body, body <= delta("bytes") <= body + 300,
                (s0, s1))
        T.check("stats: message 2 is gone from the Maildir",
                len(srv.messages("alice")) == len(MSGS) - 1,
                srv.messages("alice"))


def test_log_level(srv):
    with T.guard("log brief/verbose"):
        r = O.ctl(srv, "log", "brief")
        T.check("log brief: exit 0", r.rc == 0, r)
        T.check("log brief: answers 'logging brief'",
                "logging brief" in r.out, r)
        start = O.log_size(srv)
        p = srv.pop3s("bob")
        p.retr(1)
        p.quit()
        srv.wait_sessions_done()
        O.wait_log(srv, r"logged out", start, 5)
        text = O.log_text(srv, start)
        T.check("log brief: the session is logged (info: logged in)",
                re.search(r"user bob logged in", text) is not None, text)
        T.check("log brief: no debug line 'command RETR'",
                "command RETR" not in text, text)
        T.check("log brief: no debug line 'retrieved message'",
                "retrieved message" not in text, text)
        T.check("log brief: the login process' debug line is gone too",
                re.search(r"^login: \d+: \S+: user bob logged in", text,
                          re.M) is None, text)

        r = O.ctl(srv, "log", "verbose")
        T.check("log verbose: exit 0", r.rc == 0, r)
        T.check("log verbose: answers 'logging verbose'",
                "logging verbose" in r.out, r)
        start = O.log_size(srv)
        p = srv.pop3s("bob")
        p.retr(1)
        p.quit()
        srv.wait_sessions_done()
        O.wait_log(srv, r"logged out", start, 5)
        text = O.log_text(srv, start)
        T.check("log verbose: debug line 'command RETR' is back",
                "command RETR" in text, text)
        T.check("log verbose: the login process logs at debug level again",
                re.search(r"^login: \d+: \S+: user bob logged in", text,
                          re.M) is not None, text)


def test_kick(srv):
    with T.guard("kick"):
        before = srv.messages("alice")
        pa = srv.pop3s("alice")
        pb = srv.pop3s("bob")
        n, _ = pa.stat()
        pa.dele(1)
        pa.dele(2)
        mbox = srv.mailbox_pids()
        r = O.ctl(srv, "kick", "alice")
        T.check("kick alice: exit 0", r.rc == 0, r)
        T.check("kick alice: says 1 session ended",
                re.search(r"\b1 sessions of alice ended", r.out) is not None,
                r)
        try:
            got = pa.noop()
        except T.poplib.error_proto as e:
            got = err_text(e)
        except (OSError, EOFError) as e:
            got = "closed (%s)" % type(e).__name__
        T.check("kicked client: -ERR or a closed connection at its next "
                "command", not (isinstance(got, bytes) and
                                got.startswith(b"+OK")), got)
        try:
            pa.close()
        except OSError:
            pass
        T.check("kick: one mailbox process is gone, bob's stays",
                T.wait_for(lambda: len(srv.mailbox_pids()) == 1, 10),
                "before %s now %s" % (mbox, srv.mailbox_pids()))
        T.check("kick: nothing alice DELEd without QUIT is deleted",
                srv.messages("alice") == before,
                "before %s after %s" % (before, srv.messages("alice")))
        T.check("kick alice: bob's session carries on",
                pb.noop().startswith(b"+OK"), "")
        r = O.ctl(srv, "show", "sessions")
        T.check("kick: show sessions lists bob, not alice",
                " bob " in r.out and " alice " not in r.out, r)
        pb.quit()
        srv.wait_sessions_done()

        pa = srv.pop3s("alice")
        T.check("kick: alice can log in again and has all her messages",
                pa.stat()[0] == n, "")
        pa.quit()
        srv.wait_sessions_done()

    with T.guard("kick nobody"):
        r = O.ctl(srv, "kick", "nobody")
        T.check("kick of a user without sessions: exit 1", r.rc == 1, r)
        T.check("kick of a user without sessions: says 0",
                "0 sessions" in r.out + r.err, r)


def test_usage(srv):
    with T.guard("usage"):
        for args in (["bogus"], ["show"], ["show", "bogus"], ["log"],
                     ["log", "loud"], ["kick"], ["reload", "now"], [],
                     ["show", "stats", "extra"]):
            r = O.ctl(srv, *args)
            T.check("pop3ctl %s: exit 1 with usage" % " ".join(args or
                                                              ["(none)"]),
                    r.rc == 1 and "usage" in r.err, r)
        r = O.run([O.CTL, "-s", os.path.join(srv.tmp, "no.sock"), "show",
                   "stats"])
        T.check("pop3ctl on a missing socket: exit 1", r.rc == 1, r)


def test_nonroot(srv):
    with T.guard("non-root"):
        r = O.run(O.as_nobody([O.CTL, "-s", srv.ctl_sock, "show", "stats"]))
        T.check("pop3ctl as nobody: fails", r.rc not in (0, None), r)
        T.check("pop3ctl as nobody: no stats shown",
                "logins:" not in r.out, r)
        # Even where the file mode would let it in, the server asks the
        # kernel who is calling.
        try:
            os.chmod(srv.ctl_sock, 0o666)
            r = O.run(O.as_nobody([O.CTL, "-s", srv.ctl_sock, "show",
                                   "stats"]))
            T.check("pop3ctl as nobody on a 0666 socket: refused",
                    r.rc not in (0, None), r)
            T.check("pop3ctl as nobody on a 0666 socket: no stats",
                    "logins:" not in r.out, r)
            r = O.run(O.as_nobody([O.CTL, "-s", srv.ctl_sock, "kick",
                                   "bob"]))
            T.check("pop3ctl kick as nobody on a 0666 socket: refused",
                    r.rc not in (0, None), r)
        finally:
            os.chmod(srv.ctl_sock, 0o600)
        r = O.ctl(srv, "show", "stats")
        T.check("root still gets stats after the refusals", r.rc == 0, r)


def test_garbage(srv):
    """Junk on the control socket (as root) costs the master nothing."""
    with T.guard("control socket garbage"):
        junk = [b"\xff" * 4096,                 # an impossible length
                b"\x00" * 3,                    # half a header, then EOF
                os.urandom(64),
                b"\x01\x00\x00\x00" * 5]         # a header, no payload
        for data in junk:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(2)
                s.connect(srv.ctl_sock)
                s.sendall(data)
                try:
                    s.recv(4096)
                except (socket.timeout, OSError):
                    pass
            finally:
                s.close()
        T.check("control socket garbage: the master is still running",
                srv.alive(), "")
        r = O.ctl(srv, "show", "stats")
        T.check("control socket garbage: pop3ctl still works", r.rc == 0,
                r)
        p = srv.pop3s("bob")
        T.check("control socket garbage: POP3 still works",
                p.noop().startswith(b"+OK"), "")
        p.quit()
        srv.wait_sessions_done()


def test_encrypt(srv):
    with T.guard("encrypt"):
        r = O.run([O.CTL, "encrypt", "secret"])
        h = r.out.strip()
        T.check("encrypt secret: exit 0", r.rc == 0, r)
        T.check("encrypt secret: a $2b$ hash",
                re.fullmatch(r"\$2b\$\d\d\$[./A-Za-z0-9]{53}", h)
                is not None, r)
        T.check("encrypt secret: one line", r.out.count("\n") == 1, r)
        r2 = O.run([O.CTL, "encrypt", "secret"])
        T.check("encrypt: a fresh salt each time",
                r2.rc == 0 and r2.out.strip() != h, (r, r2))

        O.add_user(srv, "dave", "secret", hashed=h)
        srv.deliver("dave", "1700000001.M1P1.test", MSGS[0])
        r = O.ctl(srv, "reload")
        T.check("encrypt: reload with the new user", r.rc == 0, r)
        reply = O.login_reply(srv, "dave", "secret")
        T.check("encrypt: the hash verifies: dave logs in with 'secret'",
                reply.startswith(b"+OK"), reply)
        srv.wait_sessions_done()
        reply = O.login_reply(srv, "dave", "Secret")
        T.check("encrypt: and not with 'Secret'",
                reply.startswith(b"-ERR [AUTH]"), reply)

        # No tty: stdin is /dev/null and there is no controlling tty.
        r = O.run([O.CTL, "encrypt"], timeout=10)
        T.check("encrypt without a tty: does not hang", r.rc is not None,
                r)
        T.check("encrypt without a tty: exit 1", r.rc == 1, r)
        T.check("encrypt without a tty: prints no hash",
                "$2" not in r.out, r)
        T.check("encrypt without a tty: says why", r.err.strip() != "", r)
        r = O.run([O.CTL, "encrypt"], input=b"secret\nsecret\n",
                  timeout=10)
        T.check("encrypt with a password on a pipe: exit 1 (tty only)",
                r.rc == 1 and "$2" not in r.out, r)
        r = O.run([O.CTL, "encrypt", ""])
        T.check("encrypt of an empty password: exit 1",
                r.rc == 1 and "$2" not in r.out, r)


def main():
    with T.Server(users=USERS, control=True, conf_extra=O.NO_DELAY) as srv:
        deliver_all(srv, "alice", "a")
        deliver_all(srv, "bob", "b")
        test_socket(srv)
        test_sessions(srv)
        test_stats(srv)
        test_log_level(srv)
        test_kick(srv)
        test_usage(srv)
        test_nonroot(srv)
        test_garbage(srv)
        test_encrypt(srv)
        T.check("server still running at the end", srv.alive(), "")


T.run(main)
