"""Messages of every shape, in a Maildir and in an mbox: bare CR, CRLF
already, NUL octets, no final newline, lines over 1,000 octets and one of
a mebibyte, empty messages, no body, dots: LIST sizes, RETR and TOP byte
for byte.  A first session over 1,500 of them, measured by several
threads at once, some files unreadable: every size right.  Then a 100 MiB message, streamed: RETR's octet count and hash
on the wire, TOP without reading it all, and the mailbox process's peak
memory small throughout."""

import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import maildroplib as M  # noqa: E402

BIG = 100 * 1024 * 1024
HWM_LIMIT_KIB = 10 * 1024

SHAPES = [
    ("bare CR only", b"Subject: cr\r\rline one\rline two\r"),
    ("CRLF already", b"Subject: crlf\r\n\r\none\r\ntwo\r\n"),
    ("mixed endings", b"Subject: mixed\n\r\na\r\r\nb\n\rc\n"),
    ("NUL octets", b"Subject: nul\n\n\0\0a\0b\n\0\n.\0\n"),
    ("no final newline", b"Subject: open\n\nlast line"),
    ("ends in CR", b"Subject: cr end\n\nlast\r"),
    ("1001-octet line", b"Subject: long\n\n" + b"a" * 1001 + b"\nend\n"),
    ("5000-octet header", b"Subject: " + b"s" * 5000 + b"\n\nbody\n"),
    ("1 MiB line, no newline", b"Subject: huge\n\n" + b"z" * (1 << 20)),
    ("empty", b""),
    ("header only", b"Subject: alone\nX-A: b\n"),
    ("no header", b"\njust a body\n"),
    ("dots", b"Subject: dots\n\n.\n..\n.\r\n. x\n...\n"),
    ("8-bit", b"Subject: 8\n\n" + bytes(range(1, 256)) + b"\n"),
    ("From lines", b"Subject: froms\n\nFrom here\n\nFrom there\n>From x\n"),
]
TOPS = (0, 1, 2, 1000)


def check_shapes(srv, kind, user, stored):
    """stored: what each message is, as RETR must give it."""
    with T.guard("%s shapes" % kind):
        c, r = M.login_raw(srv, user)
        c.MAXLINE = 4 << 20     # the 1 MiB line
        T.check("%s: login" % kind, r.startswith(b"+OK"), r)
        n = 0
        for (desc, _), data in zip(SHAPES, stored):
            n += 1
            want = M.transformed(data)
            r = c.cmd(b"LIST %d\r\n" % n)
            T.check("%s %s: LIST size %d" % (kind, desc, len(want)),
                    r == b"+OK %d %d\r\n" % (n, len(want)), r)
            r = c.cmd(b"RETR %d\r\n" % n)
            got = c.multiline()
            T.check("%s %s: RETR +OK %d octets" % (kind, desc, len(want)),
                    r == b"+OK %d octets\r\n" % len(want), r)
            T.check("%s %s: RETR wire bytes" % (kind, desc),
                    got == M.stuffed(want) + b".\r\n",
                    (got[:60], M.stuffed(want)[:60]))
            bad = []
            for k in TOPS:
                c.send(b"TOP %d %d\r\n" % (n, k))
                r = c.readline()
                got = c.multiline() if r.startswith(b"+OK") else r
                tw = M.stuffed(M.transformed(M.top_of(data, k))) + b".\r\n"
                if got != tw:
                    bad.append((k, got[:40], tw[:40]))
            T.check("%s %s: TOP %s" % (kind, desc, "/".join(map(str, TOPS))),
                    not bad, bad)
        c.cmd(b"QUIT\r\n")
        c.close()
    srv.wait_sessions_done()


def check_many(srv, user):
    """A first session measures new files in threads (mailbox/measure.c,
    from 512 files): the small shapes over and over, every 97th file
    root's and unreadable to the user, so left out."""
    small = [d for _, d in SHAPES if len(d) < 10000]
    want = []
    for i in range(1500):
        name = "1750000%04d.M%dP2.many:2," % (i, i)
        data = small[i % len(small)] + b"many %d\n" % i
        if i % 97 == 0:
            path = os.path.join(srv.user(user).maildir, "cur", name)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o600)
            continue
        srv.deliver(user, name, data, "cur")
        want.append(len(M.transformed(data)))
    with T.guard("many shapes"):
        c, r = M.login_raw(srv, user)
        T.check("1,500 files: login", r.startswith(b"+OK"), r)
        c.send(b"LIST\r\n")
        r = c.readline()
        got = [int(line.split()[1]) for line in
               c.multiline().split(b"\r\n")[:-2]]
        T.check("1,500 files: the %d readable listed in name order, "
                "each size right" % len(want), got == want,
                (len(got), len(want)))
        c.cmd(b"QUIT\r\n")
        c.close()
    srv.wait_sessions_done()


def big_block():
    """64 KiB of whole lines, some starting with a dot."""
    lines, n, i = [], 0, 0
    while n < 65536 - 200:
        line = (b"." if i % 17 == 0 else b"") + b"line %06d " % i + \
            b"abcdefghij" * (i % 9) + b"\n"
        lines.append(line)
        n += len(line)
        i += 1
    pad = 65536 - n - 1
    lines.append(b"p" * pad + b"\n")
    block = b"".join(lines)
    assert len(block) == 65536
    return block


def write_big(f, head, block, count):
    f.write(head)
    for _ in range(count):
        f.write(block)


def retr_stream(c, n):
    """RETR n over a RawConn: (reply, wire octets, sha256 of the wire up
    to and with the final dot line), reading as it comes."""
    c.send(b"RETR %d\r\n" % n)
    r = c.readline()
    if not r.startswith(b"+OK"):
        return r, 0, None
    h = hashlib.sha256()
    total = 0
    tail = b""
    data, c.buf = c.buf, b""
    while True:
        if data:
            h.update(data)
            total += len(data)
            tail = (tail + data)[-5:]
            if tail == b"\r\n.\r\n":
                return r, total, h.hexdigest()
        data = c.sock.recv(1 << 20)
        if not data:
            raise EOFError("closed during RETR")


def check_big(srv, kind, user, n, head, block, count, pid_hint=None):
    want = hashlib.sha256()
    tb = M.stuffed(M.transformed(block))
    want.update(M.stuffed(M.transformed(head)))
    for _ in range(count):
        want.update(tb)
    want.update(b".\r\n")
    size = len(M.transformed(head)) + count * len(M.transformed(block))
    wire = len(M.stuffed(M.transformed(head))) + count * len(tb) + 3
    with T.guard("%s 100 MiB" % kind):
        t0 = time.monotonic()
        c, r = M.login_raw(srv, user)
        t1 = time.monotonic()
        T.check("%s 100 MiB: login +OK" % kind, r.startswith(b"+OK"), r)
        pid = M.session_pid(srv, user)
        r = c.cmd(b"LIST %d\r\n" % n)
        T.check("%s 100 MiB: LIST %d octets" % (kind, size),
                r == b"+OK %d %d\r\n" % (n, size), r)
        t2 = time.monotonic()
        r, total, digest = retr_stream(c, n)
        t3 = time.monotonic()
        T.check("%s 100 MiB: RETR +OK %d octets" % (kind, size),
                r == b"+OK %d octets\r\n" % size, r)
        T.check("%s 100 MiB: RETR sends %d octets on the wire" %
                (kind, wire), total == wire, total)
        T.check("%s 100 MiB: RETR bytes hash right" % kind,
                digest == want.hexdigest(), digest)
        t4 = time.monotonic()
        r = c.cmd(b"TOP %d 3\r\n" % n)
        top = c.multiline()
        t5 = time.monotonic()
        T.check("%s 100 MiB: TOP 3 lines" % kind,
                top == M.stuffed(M.transformed(M.top_of(head + block, 3)))
                + b".\r\n", top[:80])
        T.check("%s 100 MiB: TOP reads no more than it sends (%.3fs)" %
                (kind, t5 - t4), t5 - t4 < 0.5, t5 - t4)
        hwm = M.vm_hwm_kib(pid)
        T.check("%s 100 MiB: mailbox process peak memory %s KiB < %d KiB" %
                (kind, hwm, HWM_LIMIT_KIB),
                hwm is not None and hwm < HWM_LIMIT_KIB, hwm)
        c.cmd(b"QUIT\r\n")
        c.close()
        T.note("%s 100 MiB: login %.2fs (first sight: read once), RETR "
               "%.2fs, peak memory %s KiB" % (kind, t1 - t0, t3 - t2, hwm))
    srv.wait_sessions_done()


def main():
    block = big_block()
    count = BIG // len(block)
    head = (b"From: big@example.org\nSubject: one hundred mebibytes\n"
            b"\nfirst body line\n")
    with T.Server(users=[("alice", "alice-pw", "sha512"),
                         ("bob", "bob-pw", "sha512")]) as srv:
        check_many(srv, "bob")
        for i, (desc, data) in enumerate(SHAPES):
            srv.deliver("alice", "17000000%02d.M%dP1.shape" % (i, i), data,
                        "new" if i % 2 else "cur")
        check_shapes(srv, "Maildir", "alice", [d for _, d in SHAPES])
        path = os.path.join(srv.user("alice").maildir, "cur",
                            "1800000000.M1P1.big:2,")
        with open(path, "wb") as f:
            write_big(f, head, block, count)
        os.chown(path, srv.user("alice").uid, srv.user("alice").gid)
        check_big(srv, "Maildir", "alice", len(SHAPES) + 1, head, block,
                  count)
        T.check("Maildir: server still running", srv.alive(), "")

    with M.MboxServer(users=[("alice", "alice-pw", "sha512")]) as srv:
        u = srv.user("alice")
        for desc, data in SHAPES:
            M.deliver_mbox(u.mbox, data)
        # mail.local ends every message with a newline: that is stored.
        stored = [M.unescape(b) for _, b in
                  M.parse_mbox(open(u.mbox, "rb").read())]
        T.check("mbox: every shape stored as one message",
                len(stored) == len(SHAPES), len(stored))
        T.check("mbox: stored as sent, with a final newline",
                all(s == (d if d.endswith(b"\n") or not d else d + b"\n")
                    for s, (_, d) in zip(stored, SHAPES)),
                [(s[:30], d[:30]) for s, (_, d) in zip(stored, SHAPES)
                 if s != d])
        check_shapes(srv, "mbox", "alice", stored)
        with open(u.mbox, "ab") as f:
            f.write(b"From big@example.org Mon Jan  1 00:00:00 2024\n")
            write_big(f, head, block, count)
            f.write(b"\n")
        check_big(srv, "mbox", "alice", len(SHAPES) + 1, head, block, count)
        T.check("mbox: server still running", srv.alive(), "")


T.run(main)
