"""mbox maildrops (maildrop mbox "..."): From_ lines and >From, sizes and
RETR/TOP, unique-ids from content that survive a lost or damaged index
and mail readers rewriting Status: headers, an unchanged mbox served
from the index without a read, deletions rewritten in place, refusals,
the process layout, and mpop fetching only new mail."""

import hashlib
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import maildroplib as M  # noqa: E402

TEMP = b"-ERR [SYS/TEMP] Mailbox unavailable, try later.\r\n"
PERM = b"-ERR [SYS/PERM] Mailbox access refused.\r\n"
HEX32 = re.compile(r"^[0-9a-f]{32}(-[0-9]+)?$")

# Stored bytes of an mbox, and what RETR must give (before CRLF) for
# each message: written out by hand, not by the reference parser.
RAW = (
    b"\n"                                       # a leading empty line
    b"From a@example.org Mon Jan  1 00:00:01 2024\n"
    b"Subject: escapes\n\n"
    b">From the first body line, escaped\n"
    b"text\n"
    b"From here, unescaped: no empty line before\n"
    b"\n"
    b">>From stays doubled\n"
    b"x >From in the middle\n"
    b"\n"
    b"From b@example.org Mon Jan  1 00:00:02 2024\n"
    b"Subject: two\n\n.dot line\n..two dots\n\n"
    b"From c@example.org Mon Jan  1 00:00:03 2024\r\n"
    b"Subject: crlf\r\n\r\nline\r\n\r\n"
    b"From d@example.org Mon Jan  1 00:00:04 2024\n"
    b"\n"
    b"From e@example.org Mon Jan  1 00:00:05 2024\n"
    b"Subject: last, no newline at the end"
)
WANT = [
    b"Subject: escapes\n\nFrom the first body line, escaped\ntext\n"
    b"From here, unescaped: no empty line before\n\n>>From stays doubled\n"
    b"x >From in the middle\n",
    b"Subject: two\n\n.dot line\n..two dots\n",
    b"Subject: crlf\r\n\r\nline\r\n",
    b"",
    b"Subject: last, no newline at the end",
]


def login(srv, user="alice"):
    c, r = M.login_raw(srv, user)
    if not r.startswith(b"+OK"):
        c.close()
        raise RuntimeError("login %s: %r" % (user, r))
    return c


def quit(srv, c):
    r = c.cmd(b"QUIT\r\n")
    c.close()
    srv.wait_sessions_done()
    return r


def uidls(srv, user="alice"):
    c = login(srv, user)
    u = M.uidl_map(c)
    quit(srv, c)
    return u


def contents(srv, user="alice"):
    """{uidl: RETR body} of a session."""
    c = login(srv, user)
    out = {}
    for n, u in M.uidl_map(c).items():
        out[u] = M.retr(c, n)[1]
    quit(srv, c)
    return out


def log_has(srv, what, since):
    with open(srv.log, "rb") as f:
        return what in f.read()[since:]


def log_size(srv):
    return os.path.getsize(srv.log)


def write_mbox(srv, user, data):
    u = srv.user(user)
    M.create_mbox(u.mbox, u.uid, u.gid, data)


def test_format(srv):
    write_mbox(srv, "alice", RAW)
    with T.guard("mbox format"):
        c = login(srv)
        r = c.cmd(b"STAT\r\n")
        sizes = [len(T.expected(w)) for w in WANT]
        T.check("STAT: %d messages, the CRLF size" % len(WANT),
                r == b"+OK %d %d\r\n" % (len(WANT), sum(sizes)), r)
        r = c.cmd(b"LIST\r\n")
        lines = c.multiline()
        want = b"".join(b"%d %d\r\n" % (i + 1, s) for i, s in
                        enumerate(sizes)) + b".\r\n"
        T.check("LIST: every size", lines == want, lines)
        for i, w in enumerate(WANT):
            r, b = M.retr(c, i + 1)
            T.check("RETR %d: +OK %d octets" % (i + 1, sizes[i]),
                    r == b"+OK %d octets\r\n" % sizes[i], r)
            T.check("RETR %d: From_ line gone, >From undone, bytes as "
                    "sent" % (i + 1), b == T.expected(w), (b, w))
        _, b = M.retr(c, 1, top=1)
        T.check("TOP 1 1: header, empty line, unescaped first line",
                b == b"Subject: escapes\r\n\r\nFrom the first body line, "
                b"escaped\r\n", b)
        _, b = M.retr(c, 4, top=5)
        T.check("TOP of an empty message: nothing", b == b"", b)
        u = M.uidl_map(c)
        T.check("UIDL: a content hash, 32 hex digits",
                all(HEX32.match(x) for x in u.values()), u)
        T.check("UIDL: unique", len(set(u.values())) == len(u), u)
        quit(srv, c)
        ours = [M.unescape(b) for _, b in M.parse_mbox(RAW)]
        T.check("the reference parser agrees", ours == WANT, ours)


def test_uidl(srv):
    u = srv.user("alice")
    write_mbox(srv, "alice", b"")
    for i in range(4):
        M.deliver_mbox(u.mbox, b"Subject: m%d\n\nbody %d\n" % (i, i),
                       date="Mon Jan  1 00:00:%02d 2024" % i)
    with T.guard("mbox UIDL"):
        first = uidls(srv)
        since = log_size(srv)
        T.check("UIDL the same in the next session", uidls(srv) == first,
                "")
        T.check("an unchanged mbox is served from the index, not read",
                log_has(srv, b"mbox: unchanged", since), "")

        M.deliver_mbox(u.mbox, b"Subject: m4\n\nbody 4\n")
        u2 = uidls(srv)
        T.check("new mail: old unique-ids and numbers kept",
                {k: v for k, v in u2.items() if k <= 4} == first, u2)
        T.check("new mail: a new unique-id", len(set(u2.values())) == 5,
                u2)

        idx = srv.index_dir("alice")
        for n in os.listdir(idx):
            os.unlink(os.path.join(idx, n))
        T.check("index removed: the same unique-ids", uidls(srv) == u2, "")
        with open(os.path.join(idx, "pop3d.index"), "r+b") as f:
            f.write(b"garbage" * 100)
        T.check("index damaged: the same unique-ids", uidls(srv) == u2, "")

        # mail(1) and friends mark messages read in place.
        data = open(u.mbox, "rb").read()
        data = data.replace(b"\n\nbody", b"\nStatus: RO\nX-Status: A\n\n"
                            b"body")
        with open(u.mbox, "r+b") as f:
            f.write(data)
            f.truncate()
        c = login(srv)
        u3 = M.uidl_map(c)
        T.check("Status: headers added by a mail reader: unique-ids kept",
                u3 == u2, u3)
        r, b = M.retr(c, 2)
        T.check("... and RETR gives the message as it is now",
                b == b"Subject: m1\r\nStatus: RO\r\nX-Status: A\r\n\r\n"
                b"body 1\r\n" and r == b"+OK %d octets\r\n" % len(b),
                (r, b))
        quit(srv, c)

        # The same message twice (same From_ line, same bytes).
        dup = b"Subject: twice\n\nsame\n"
        M.deliver_mbox(u.mbox, dup, date="Mon Jan  1 00:09:00 2024")
        M.deliver_mbox(u.mbox, dup, date="Mon Jan  1 00:09:00 2024")
        u4 = uidls(srv)
        a, b = u4[6], u4[7]
        T.check("identical messages: <hash> and <hash>-2",
                b == a + "-2" and HEX32.match(a), (a, b))
        c = login(srv)
        c.cmd(b"DELE 6\r\n")
        quit(srv, c)
        u5 = uidls(srv)
        T.check("the second copy keeps <hash>-2 once the first is gone",
                u5.get(6) == b, u5)
    return u5


def test_update(srv):
    u = srv.user("alice")
    with T.guard("mbox UPDATE"):
        before = open(u.mbox, "rb").read()
        st = os.stat(u.mbox)
        entries = M.parse_mbox(before)
        old = uidls(srv)
        c = login(srv)
        for n in (1, 3):
            c.cmd(b"DELE %d\r\n" % n)
        r = quit(srv, c)
        T.check("QUIT after DELE 1 and 3: +OK Bye, 2 messages deleted.",
                r == b"+OK Bye, 2 messages deleted.\r\n", r)
        after = open(u.mbox, "rb").read()
        # Each entry runs from its From_ line to the next one's.
        bounds = [o for o, _ in entries] + [len(before)]
        want = b"".join(before[bounds[i]:bounds[i + 1]]
                        for i in range(len(entries)) if i not in (0, 2))
        T.check("the mbox holds exactly the kept entries, byte for byte",
                after == want, (len(after), len(want)))
        st2 = os.stat(u.mbox)
        T.check("rewritten in place: same inode, owner and mode",
                (st2.st_ino, st2.st_uid, st2.st_gid, st2.st_mode) ==
                (st.st_ino, st.st_uid, st.st_gid, st.st_mode), st2)
        idx = srv.index_dir("alice")
        T.check("no journal left",
                not [n for n in os.listdir(idx) if "journal" in n],
                os.listdir(idx))
        T.check("no dot-lock left", not os.path.exists(u.mbox + ".lock"),
                os.listdir(srv.spool))
        since = log_size(srv)
        new = uidls(srv)
        T.check("kept messages keep their unique-ids",
                list(new.values()) == [v for k, v in sorted(old.items())
                                       if k not in (1, 3)], (old, new))
        T.check("after our own update the mbox is not read again",
                log_has(srv, b"mbox: unchanged", since), "")

        c = login(srv)
        for n in new:
            c.cmd(b"DELE %d\r\n" % n)
        quit(srv, c)
        T.check("deleting every message leaves an empty file",
                os.path.getsize(u.mbox) == 0 and
                os.stat(u.mbox).st_ino == st.st_ino, os.path.getsize(u.mbox))
        c = login(srv)
        r = c.cmd(b"STAT\r\n")
        T.check("an empty mbox: STAT 0 0", r == b"+OK 0 0\r\n", r)
        quit(srv, c)


def test_journal_aside(srv):
    u = srv.user("alice")
    with T.guard("foreign journal"):
        M.deliver_mbox(u.mbox, b"Subject: j\n\nj\n")
        before = open(u.mbox, "rb").read()
        j = os.path.join(srv.index_dir("alice"), "pop3d.journal")
        with open(j, "wb") as f:
            f.write(b"not a journal at all")
        os.chown(j, u.uid, u.gid)
        c = login(srv)
        r = c.cmd(b"STAT\r\n")
        T.check("a malformed journal: the session goes on",
                r.startswith(b"+OK 1 "), r)
        quit(srv, c)
        T.check("... the mbox is untouched",
                open(u.mbox, "rb").read() == before, "")
        T.check("... and the journal is set aside as .bad",
                os.path.exists(j + ".bad") and not os.path.exists(j),
                os.listdir(srv.index_dir("alice")))


def test_lawless_writer(srv):
    """A program that ignores the locks writes during the session."""
    u = srv.user("alice")
    with T.guard("mbox written behind the locks"):
        M.deliver_mbox(u.mbox, b"Subject: keep me\n\nx\n")
        c = login(srv)
        n = len(M.uidl_map(c))
        c.cmd(b"DELE 1\r\n")
        with open(u.mbox, "ab") as f:
            f.write(M.mbox_entry(b"Subject: sneaked in\n\ny\n"))
        r = quit(srv, c)
        T.check("QUIT: -ERR [SYS/TEMP] Mailbox not updated, no message "
                "deleted.", r == b"-ERR [SYS/TEMP] Mailbox not updated, "
                b"no message deleted.\r\n", r)
        T.check("... and nothing deleted, the new message kept",
                len(M.mbox_messages(u.mbox)) == n + 1,
                len(M.mbox_messages(u.mbox)))

    with T.guard("mbox index read-only"):
        idx = os.path.join(srv.index_dir("alice"), "pop3d.index")
        os.chmod(idx, 0o400)
        c, r = M.login_raw(srv, "alice")
        c.close()
        srv.wait_sessions_done()
        os.chmod(idx, 0o600)
        T.check("mbox index that cannot be written: %s" %
                TEMP.decode().strip(), r == TEMP, r)


def test_refusals(srv):
    b = srv.user("bob")
    with T.guard("missing mbox"):
        os.unlink(b.mbox)
        c = login(srv, "bob")
        r = c.cmd(b"STAT\r\n")
        T.check("no mbox file yet: STAT 0 0", r == b"+OK 0 0\r\n", r)
        quit(srv, c)
        M.create_mbox(b.mbox, b.uid, b.gid)
        M.deliver_mbox(b.mbox, b"Subject: first\n\nhello\n")
        c = login(srv, "bob")
        r = c.cmd(b"STAT\r\n")
        T.check("first delivery: STAT 1", r.startswith(b"+OK 1 "), r)
        quit(srv, c)

    alice = srv.user("alice")
    cases = (
        ("a file that is no mbox", TEMP,
         lambda: write_mbox(srv, "bob", b"This is not an mbox.\n")),
        ("a symbolic link", PERM,
         lambda: os.symlink(b.mbox + ".real", b.mbox)),
        ("another user's file", PERM,
         lambda: M.create_mbox(b.mbox, alice.uid, alice.gid,
                               b"From x\n\n")),
        ("a file with two links", PERM,
         lambda: os.link(b.mbox + ".real", b.mbox)),
        ("a directory", PERM, lambda: os.mkdir(b.mbox)),
    )
    for what, want, setup in cases:
        with T.guard("refuse " + what):
            os.rename(b.mbox, b.mbox + ".real")
            try:
                setup()
                c, r = M.login_raw(srv, "bob")
                c.close()
                srv.wait_sessions_done()
                T.check("mbox is %s: %s" % (what, want.decode().strip()),
                        r == want, r)
                T.check("mbox is %s: no lock left behind" % what,
                        not os.path.exists(b.mbox + ".lock"),
                        os.listdir(srv.spool))
            finally:
                if os.path.isdir(b.mbox) and not os.path.islink(b.mbox):
                    os.rmdir(b.mbox)
                elif os.path.lexists(b.mbox):
                    os.unlink(b.mbox)
                os.rename(b.mbox + ".real", b.mbox)


def test_layout(srv):
    a = srv.user("alice")
    with T.guard("process layout"):
        c = login(srv)
        pid = M.session_pid(srv, "alice")
        ids = T.proc_ids(pid)
        T.check("mbox session runs as the user",
                ids.get("Uid") == [a.uid] * 4, ids)
        idx = srv.index_dir("alice")
        T.check("mbox session is chrooted into its own index directory",
                T.proc_root(pid) == os.path.realpath(idx), T.proc_root(pid))
        fds = [os.readlink("/proc/%d/fd/%s" % (pid, f))
               for f in os.listdir("/proc/%d/fd" % pid)]
        T.check("mbox session holds no descriptor of the spool directory",
                os.path.realpath(srv.spool) not in fds, fds)
        keepers = [p for p in srv.mailbox_pids() if p != pid]
        T.check("one lock keeper beside the session", len(keepers) == 1,
                keepers)
        for k in keepers:
            T.check("the lock keeper is the session's child",
                    T.proc_ppid(k) == pid, T.proc_ppid(k))
            T.check("the lock keeper is chrooted too",
                    T.proc_root(k) == os.path.realpath(idx),
                    T.proc_root(k))
            kfds = [os.readlink("/proc/%d/fd/%s" % (k, f))
                    for f in os.listdir("/proc/%d/fd" % k)]
            T.check("the lock keeper has no client socket, no mbox",
                    not [f for f in kfds if f.startswith("socket:") or
                         f == a.mbox], kfds)
        quit(srv, c)
        st = os.stat(srv.spool)
        T.check("the spool directory is still root's, 0755",
                (st.st_uid, st.st_mode & 0o7777) == (0, 0o755), st)
        st = os.stat(os.path.join(srv.spool, ".pop3d"))
        T.check(".pop3d is root's, 0711",
                (st.st_uid, st.st_mode & 0o7777) == (0, 0o711), st)
        st = os.stat(idx)
        T.check(".pop3d/alice is alice's, 0700",
                (st.st_uid, st.st_mode & 0o7777) == (a.uid, 0o700), st)
        T.check("no process left of the session", srv.wait_sessions_done(),
                srv.mailbox_pids())


def test_mpop(srv):
    d = srv.user("dave")
    for i in range(3):
        M.deliver_mbox(d.mbox, b"Subject: d%d\n\nhello %d\n" % (i, i))
    with T.guard("mbox: mpop"):
        dest = os.path.join(srv.tmp, "mpop-dave")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(dest, sub))
        cmd = ["mpop", "--host=127.0.0.1", "--port=%d" % srv.port,
               "--tls=on", "--tls-starttls=off",
               "--tls-trust-file=" + srv.cert, "--auth=user", "--user=dave",
               "--passwordeval=echo dave-pw", "--delivery=maildir," + dest,
               "--keep=on", "--only-new=on", "--received-header=off",
               "--uidls-file=" + os.path.join(srv.tmp, "mpop-uidls"),
               "--timeout=30", "-q"]
        env = dict(os.environ, HOME=srv.tmp)

        def got():
            out = []
            for n in sorted(os.listdir(os.path.join(dest, "new"))):
                with open(os.path.join(dest, "new", n), "rb") as f:
                    out.append(f.read())
            return out
        r = subprocess.run(cmd, capture_output=True, timeout=60, env=env)
        srv.wait_sessions_done()
        T.check("mbox: mpop first run exits 0", r.returncode == 0,
                r.stderr[-300:])
        first = got()
        T.check("mbox: mpop first run fetches all 3", len(first) == 3,
                len(first))
        T.check("mbox: mpop gets the messages without From_ lines",
                sorted(first) == sorted(b"Subject: d%d\n\nhello %d\n" %
                                        (i, i) for i in range(3)), first)
        M.deliver_mbox(d.mbox, b"Subject: d3\n\nnew 3\n")
        M.deliver_mbox(d.mbox, b"Subject: d4\n\nnew 4\n")
        r = subprocess.run(cmd, capture_output=True, timeout=60, env=env)
        srv.wait_sessions_done()
        T.check("mbox: mpop second run exits 0", r.returncode == 0,
                r.stderr[-300:])
        second = got()
        new = [m for m in second if m not in first]
        T.check("mbox: mpop second run fetches only the 2 new messages",
                len(second) == 5 and sorted(new) ==
                [b"Subject: d3\n\nnew 3\n", b"Subject: d4\n\nnew 4\n"],
                [hashlib.sha1(m).hexdigest()[:8] for m in second])


def main():
    with M.MboxServer(users=[("alice", "alice-pw"), ("bob", "bob-pw"),
                             ("dave", "dave-pw")]) as srv:
        test_format(srv)
        test_uidl(srv)
        test_update(srv)
        test_journal_aside(srv)
        test_lawless_writer(srv)
        test_refusals(srv)
        test_layout(srv)
        test_mpop(srv)
        T.check("server still running at the end", srv.alive(), "")


T.run(main)
