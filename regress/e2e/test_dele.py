"""DELE, RSET, NOOP and the UPDATE state: what QUIT removes, what a dropped
connection keeps."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402

USER, PASSWORD = "alice", "alice-pw"
N = 6


def body(i):
    return (b"From: sender%d@example.org\nSubject: message %d\n\n"
            b"This is message %d.\n" % (i, i, i)) + b"x\n" * i


def name_of(i):
    return "17000000%02d.M%dP1.test" % (i, i)


def err(p, cmd):
    """Send cmd with poplib; the reply, +OK or -ERR, as bytes."""
    try:
        return p._shortcmd(cmd)
    except T.poplib.error_proto as e:
        return e.args[0]


def expect_stat(p, nums, what):
    n, size = p.stat()
    want = (len(nums), sum(len(T.expected(body(i))) for i in nums))
    T.check("STAT %s" % what, (n, size) == want,
            "got %s, want %s" % ((n, size), want))


def test_dele_rset(srv):
    with T.guard("DELE and RSET"):
        p = srv.pop3s(USER)
        r = err(p, "DELE 2")
        T.check("DELE 2: +OK", r.startswith(b"+OK"), r)
        expect_stat(p, [1, 3, 4, 5, 6], "after DELE 2 leaves it out")
        for cmd in ("LIST 2", "RETR 2", "DELE 2", "TOP 2 0"):
            r = err(p, cmd)
            T.check("%s of a deleted message: -ERR" % cmd,
                    r.startswith(b"-ERR"), r)
        resp, lines, _ = p.list()
        nums = [int(l.split()[0]) for l in lines]
        T.check("LIST leaves out the deleted message",
                nums == [1, 3, 4, 5, 6], lines)
        for cmd in ("DELE 0", "DELE 7", "DELE 99", "DELE", "DELE x"):
            r = err(p, cmd)
            T.check("%s: -ERR" % cmd, r.startswith(b"-ERR"), r)
        r = err(p, "NOOP")
        T.check("NOOP: +OK", r.startswith(b"+OK"), r)
        r = err(p, "RSET")
        T.check("RSET: +OK", r.startswith(b"+OK"), r)
        expect_stat(p, range(1, N + 1), "after RSET counts all again")
        r = err(p, "LIST 2")
        T.check("LIST 2 after RSET: +OK", r.startswith(b"+OK"), r)
        _, lines, _ = p.retr(2)
        T.check("RETR 2 after RSET", T.joined(lines) == T.expected(body(2)),
                lines[:2])
        r = p.quit()
        T.check("QUIT after RSET: +OK", r.startswith(b"+OK"), r)
    srv.wait_sessions_done()
    T.check("after DELE, RSET, QUIT: every file still there",
            srv.messages(USER) == [name_of(i) for i in range(1, N + 1)],
            srv.messages(USER))


def visible(srv):
    return {k: [n for n in v if not n.startswith(".")]
            for k, v in srv.files(USER).items()}


def test_drop(srv):
    before = visible(srv)
    with T.guard("DELE and drop"):
        p = srv.pop3s(USER)
        for i in (1, 2, 3):
            r = err(p, "DELE %d" % i)
            T.check("DELE %d before a drop: +OK" % i, r.startswith(b"+OK"),
                    r)
        # Drop the connection: no QUIT, no TLS close_notify.
        p.file.close()
        p.sock.close()
    T.check("session ends after the connection drops",
            srv.wait_sessions_done(), "mailbox process still there")
    T.check("dropped connection deletes nothing", visible(srv) == before,
            "before %s after %s" % (before, visible(srv)))
    with T.guard("login after drop"):
        p = srv.pop3s(USER)
        expect_stat(p, range(1, N + 1), "after a dropped session")
        p.quit()
    srv.wait_sessions_done()


def test_dele_quit(srv):
    with T.guard("DELE and QUIT"):
        p = srv.pop3s(USER)
        for i in (1, 4):
            r = err(p, "DELE %d" % i)
            T.check("DELE %d: +OK" % i, r.startswith(b"+OK"), r)
        expect_stat(p, [2, 3, 5, 6], "after DELE 1 and 4")
        r = p.quit()
        T.check("QUIT after DELE: +OK", r.startswith(b"+OK"), r)
        # RFC 1939: the server removes the messages, then replies.
        T.check("QUIT removed exactly messages 1 and 4",
                srv.messages(USER) == [name_of(i) for i in (2, 3, 5, 6)],
                srv.messages(USER))
    srv.wait_sessions_done()
    with T.guard("after DELE and QUIT"):
        p = srv.pop3s(USER)
        expect_stat(p, [2, 3, 5, 6], "in the next session")
        for n, i in enumerate((2, 3, 5, 6)):
            _, lines, _ = p.retr(n + 1)
            T.check("message %d is the old message %d" % (n + 1, i),
                    T.joined(lines) == T.expected(body(i)), lines[:2])
        # Delete everything: the mailbox ends empty.
        for n in range(1, 5):
            err(p, "DELE %d" % n)
        expect_stat(p, [], "after deleting all")
        resp, lines, _ = p.list()
        T.check("LIST of an all-deleted mailbox is empty", lines == [],
                lines)
        p.quit()
        T.check("QUIT removed every message", srv.messages(USER) == [],
                srv.messages(USER))
    srv.wait_sessions_done()
    with T.guard("empty mailbox"):
        p = srv.pop3s(USER)
        T.check("STAT of an empty mailbox: 0 0", p.stat() == (0, 0), "")
        r = err(p, "RETR 1")
        T.check("RETR 1 of an empty mailbox: -ERR", r.startswith(b"-ERR"),
                r)
        p.quit()
    srv.wait_sessions_done()


def test_new_mail_between_sessions(srv):
    with T.guard("new mail arrives"):
        srv.deliver(USER, "1800000001.M1P1.test", b"Subject: late\n\nhi\n")
        p = srv.pop3s(USER)
        n, size = p.stat()
        T.check("mail delivered between sessions is seen",
                n == 1 and size == len(T.expected(b"Subject: late\n\nhi\n")),
                (n, size))
        p.quit()
    srv.wait_sessions_done()


def main():
    with T.Server(users=[(USER, PASSWORD, "sha512")]) as srv:
        for i in range(1, N + 1):
            if i % 2:
                srv.deliver(USER, name_of(i), body(i), "new")
            else:
                srv.deliver(USER, name_of(i) + ":2,S", body(i), "cur")
        test_dele_rset(srv)
        test_drop(srv)
        test_dele_quit(srv)
        test_new_mail_between_sessions(srv)
        T.check("server still running at the end", srv.alive(), "")


T.run(main)
