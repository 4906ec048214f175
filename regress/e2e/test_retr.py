"""TRANSACTION state, reading: Maildir scan, numbering, STAT, LIST, RETR
byte for byte (poplib and the raw wire), line ending conversion,
dot-stuffing, 8-bit bytes, an empty message and a 5 MiB one."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402

# (description, file bytes, subdir, file name suffix)
MESSAGES = [
    ("plain CRLF",
     b"From: a@example.org\r\nTo: alice@example.org\r\nSubject: crlf\r\n"
     b"\r\nHello, Alice.\r\n\r\nBye.\r\n", "new", ""),
    ("bare LF",
     b"From: b@example.org\nSubject: lf\n\nline one\nline two\n\n", "cur",
     ":2,S"),
    ("leading dots",
     b"Subject: dots\n\n.\n..\n.x\n...three\nmid.dle\n.\n. \nend\n", "new",
     ""),
    ("no final newline",
     b"Subject: no newline\n\nlast line has no LF", "new", ""),
    ("empty file", b"", "new", ""),
    ("mixed CRLF and LF",
     b"Subject: mixed\r\nX-A: 1\n\r\nbody crlf\r\nbody lf\nbody crlf\r\n"
     b"trailing", "cur", ":2,"),
    ("8-bit bytes",
     b"Subject: =?utf-8?q?8bit?=\nContent-Type: text/plain; charset=utf-8\n"
     b"\n\xc3\xa9t\xc3\xa9 \xe2\x82\xac\n" + bytes(range(0x80, 0x100)) +
     b"\n\ttab\x01\x7f\n", "new", ""),
    ("only a dot", b".", "new", ""),
    ("dot CRLF dot", b".\r\n.\r\n", "new", ""),
    ("5 MiB", None, "new", ""),
]


def name_of(i):
    return "17000000%02d.M%dP1.test" % (i + 1, i + 1)


def deliver_all(srv):
    data = []
    for i, (desc, body, sub, suffix) in enumerate(MESSAGES):
        if body is None:
            body = T.big_message()
        srv.deliver("alice", name_of(i) + suffix, body, sub)
        data.append(body)
    # Not messages: dot files in new/ and cur/, a file in tmp/.
    srv.deliver("alice", ".hidden-new", b"Subject: hidden\n\nno\n", "new")
    srv.deliver("alice", ".hidden-cur:2,", b"Subject: hidden\n\nno\n", "cur")
    srv.deliver("alice", "1600000000.M0P1.test", b"Subject: tmp\n\nno\n",
                "tmp")
    return data


def test_stat_list(srv, data):
    sizes = [len(T.expected(d)) for d in data]
    with T.guard("STAT/LIST"):
        p = srv.pop3s("alice")
        n, total = p.stat()
        T.check("STAT counts %d messages (dot files, tmp/ left out)" %
                len(data), n == len(data), "got %d" % n)
        T.check("STAT size is the CRLF size", total == sum(sizes),
                "got %d, want %d" % (total, sum(sizes)))
        resp, lines, _ = p.list()
        T.check("LIST +OK", resp.startswith(b"+OK"), resp)
        want = [b"%d %d" % (i + 1, s) for i, s in enumerate(sizes)]
        T.check("LIST lines: every number and size", lines == want,
                "got %s" % lines)
        for i, s in enumerate(sizes):
            r = p.list(i + 1)
            T.check("LIST %d (%s)" % (i + 1, MESSAGES[i][0]),
                    r.split()[:3] == [b"+OK", b"%d" % (i + 1), b"%d" % s],
                    r)
        for bad in ("0", "%d" % (len(data) + 1), "99999999999999999999",
                    "-1", "abc", "1 2"):
            try:
                r = p._shortcmd("LIST " + bad)
                T.check("LIST %s: -ERR" % bad, False, r)
            except T.poplib.error_proto as e:
                T.check("LIST %s: -ERR" % bad,
                        e.args[0].startswith(b"-ERR"), e)
        r = p.noop()
        T.check("NOOP: +OK", r.startswith(b"+OK"), r)
        p.quit()
    srv.wait_sessions_done()


def test_maildir_moves(srv, data):
    files = srv.files("alice")
    new = [n for n in files["new"] if not n.startswith(".")]
    T.check("after login new/ holds no message", new == [], new)
    for i, (desc, body, sub, suffix) in enumerate(MESSAGES):
        if sub == "new":
            want = name_of(i) + ":2,"
        else:
            want = name_of(i) + suffix
        T.check("message %d (%s) is cur/%s" % (i + 1, desc, want),
                want in files["cur"], files["cur"])
    T.check("new/.hidden-new left alone", ".hidden-new" in files["new"],
            files["new"])
    T.check("cur/.hidden-cur:2, left alone", ".hidden-cur:2," in
            files["cur"], files["cur"])
    u = srv.user("alice")
    T.check("tmp/ file left alone", os.path.exists(
        os.path.join(u.maildir, "tmp", "1600000000.M0P1.test")), "")
    wrong = []
    for n in files["cur"]:
        st = os.stat(os.path.join(u.maildir, "cur", n))
        if (st.st_uid, st.st_gid) != (u.uid, u.gid):
            wrong.append("%s %d:%d" % (n, st.st_uid, st.st_gid))
    T.check("files in cur/ still owned by alice", not wrong, wrong)


def test_retr_poplib(srv, data):
    with T.guard("RETR with poplib"):
        p = srv.pop3s("alice")
        for i, d in enumerate(data):
            desc = MESSAGES[i][0]
            want = T.expected(d)
            resp, lines, octets = p.retr(i + 1)
            T.check("RETR %d (%s): +OK %d octets" % (i + 1, desc, len(want)),
                    resp == b"+OK %d octets" % len(want), resp)
            got = T.joined(lines)
            T.check("RETR %d (%s): bytes as expected" % (i + 1, desc),
                    got == want, first_diff(got, want))
        p.quit()
    srv.wait_sessions_done()


def test_retr_wire(srv, data):
    with T.guard("RETR on the wire"):
        with srv.raw() as c:
            c.readline()
            c.cmd(b"USER alice\r\n")
            r = c.cmd(b"PASS alice-pw\r\n")
            T.check("raw login", r.startswith(b"+OK"), r)
            for i, d in enumerate(data):
                desc = MESSAGES[i][0]
                r = c.cmd(b"RETR %d\r\n" % (i + 1))
                want = T.wire(d)
                got = c.multiline() if r.startswith(b"+OK") else b""
                T.check("RETR %d (%s): dot-stuffed wire bytes" % (i + 1, desc),
                        got == want, first_diff(got, want))
            # Retrieving twice gives the same bytes.
            r = c.cmd(b"RETR 3\r\n")
            got = c.multiline() if r.startswith(b"+OK") else b""
            T.check("RETR 3 again: same bytes", got == T.wire(data[2]),
                    first_diff(got, T.wire(data[2])))
            for bad in (b"RETR 0", b"RETR %d" % (len(data) + 1), b"RETR",
                        b"RETR x"):
                r = c.cmd(bad + b"\r\n")
                T.check("%s: -ERR" % bad.decode(), r.startswith(b"-ERR"), r)
            r = c.cmd(b"retr 1\r\n")
            got = c.multiline() if r.startswith(b"+OK") else b""
            T.check("lower-case retr works", got == T.wire(data[0]), r)
            r = c.cmd(b"QUIT\r\n")
            T.check("QUIT: +OK", r.startswith(b"+OK"), r)
    srv.wait_sessions_done()
    T.check("no file removed by reading", srv.messages("alice") ==
            sorted(name_of(i) for i in range(len(data))),
            srv.messages("alice"))


def first_diff(got, want):
    if got == want:
        return ""
    n = min(len(got), len(want))
    i = next((k for k in range(n) if got[k] != want[k]), n)
    return "lengths %d/%d, first difference at %d: got %r want %r" % (
        len(got), len(want), i, got[max(0, i - 10):i + 20],
        want[max(0, i - 10):i + 20])


def main():
    with T.Server(users=[("alice", "alice-pw", "bcrypt")]) as srv:
        data = deliver_all(srv)
        test_stat_list(srv, data)
        test_maildir_moves(srv, data)
        test_retr_poplib(srv, data)
        test_retr_wire(srv, data)
        T.check("server still running at the end", srv.alive(), "")


T.run(main)
