"""The Maildir index's shortcut: a session that listed cur/ in full, with
a row for every file, keeps cur/'s identity (dev, ino, size, mtime,
ctime) in the index if cur/ had been still for 2 seconds; a later session
whose cur/ has that identity takes the rows as the message list, reading
neither the directory nor a file ("index: cur unchanged, N messages" in
the debug log).  Each case checks UIDL, LIST and RETR against the files:
the shortcut lists what the long way does, and every change to cur/ (new
mail, another program's new file, rename or removal, a DELE, a file
readable again, an mtime put back) sends the next session the long way.
A row naming another message's file rebuilds the index (case i, before
h: a rebuild cannot keep a unique-id the name does not give); an index
of version 2 is upgraded and keeps its unique-ids."""

import collections
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import maildroplib as M  # noqa: E402

USER, PASSWORD = "alice", "alice-pw"
STILL = 2.5             # past the server's 2 seconds (MAILDIR_STILL)
SHORT = re.compile(rb"index: cur unchanged, (\d+) messages")
LONG = b"files in cur"  # maildir_list()'s debug line
KEPT = {}               # base: the unique-id an old index gave it
V2 = ("CREATE TABLE msg (id INTEGER PRIMARY KEY, base TEXT UNIQUE NOT "
      "NULL, uidl TEXT UNIQUE NOT NULL, size INTEGER NOT NULL, fsize "
      "INTEGER NOT NULL DEFAULT -1)",
      "CREATE TABLE mbox (id INTEGER PRIMARY KEY, hash BLOB NOT NULL, uidl "
      "TEXT UNIQUE NOT NULL, size INTEGER NOT NULL, fromoff INTEGER NOT "
      "NULL, msgstart INTEGER NOT NULL, msgend INTEGER NOT NULL)",
      "CREATE TABLE mboxstate (id INTEGER PRIMARY KEY CHECK (id = 1), dev "
      "INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL, "
      "mtime INTEGER NOT NULL, ctime INTEGER NOT NULL)")


def name_of(i):
    return "17%08d.M%dP%d.idx" % (i, i, i)


def body(i):
    return (b"From: s%d@example.org\nSubject: message %d\n\n%s.dot line\n"
            b"last\n" % (i, i, b"line\n" * i))


def cur_dir(srv):
    return os.path.join(srv.user(USER).maildir, "cur")


def index_path(srv):
    return os.path.join(srv.user(USER).maildir, "pop3d.index")


def on_disk(srv, leave_out=()):
    """{unique-id: bytes} of the files in new/ and cur/."""
    out = {}
    for sub in ("new", "cur"):
        d = os.path.join(srv.user(USER).maildir, sub)
        for n in os.listdir(d):
            base = n.split(":")[0]
            if not n.startswith(".") and base not in leave_out:
                with open(os.path.join(d, n), "rb") as f:
                    out[KEPT.get(base, base)] = f.read()
    return out


def put_cur(srv, i, flags=":2,S"):
    """A file put into cur/ by another program."""
    srv.deliver(USER, name_of(i) + flags, body(i), subdir="cur")


def session(srv, dele=()):
    """Log in, UIDL, LIST, RETR each message, DELE those of dele, QUIT:
    s.uidl, s.sizes, s.bodies by number; s.log, the session's part of
    the log; s.short, the count the shortcut logged (or None); s.long,
    cur/ listed."""
    off = os.path.getsize(srv.log)
    s = type("Session", (), {})()
    c, r = M.login_raw(srv, USER)
    try:
        if not r.startswith(b"+OK"):
            raise RuntimeError("login: %r" % r)
        s.uidl = M.uidl_map(c)
        r = c.cmd(b"LIST\r\n")
        if not r.startswith(b"+OK"):
            raise RuntimeError("LIST: %r" % r)
        s.sizes = dict(tuple(map(int, l.split())) for l in
                       c.multiline().split(b"\r\n") if l not in (b"", b"."))
        s.bodies = {n: M.retr(c, n)[1] for n in s.uidl}
        for n in dele:
            c.cmd(b"DELE %d\r\n" % n)
        c.cmd(b"QUIT\r\n")
    finally:
        c.close()
    srv.wait_sessions_done()

    def part():
        with open(srv.log, "rb") as f:
            f.seek(off)
            return f.read()
    T.wait_for(lambda: b"logout (" in part(), timeout=5)
    s.log = part()
    m = SHORT.search(s.log)
    s.short = int(m.group(1)) if m else None
    s.long = LONG in s.log
    return s


def by_uidl(s):
    return {s.uidl[n]: (s.sizes.get(n), s.bodies[n]) for n in s.uidl}


def check_list(srv, what, s, want=None):
    """UIDL, LIST and RETR of s against the files (or want)."""
    want = on_disk(srv) if want is None else want
    exp = {u: (len(T.expected(d)), T.expected(d)) for u, d in want.items()}
    got = by_uidl(s)
    gz, ez = ({u: z for u, (z, _) in d.items()} for d in (got, exp))
    T.check("%s: UIDL and LIST as the files say" % what, gz == ez,
            "listed %s, files %s" % (set(gz.items()) - set(ez.items()),
                                     set(ez.items()) - set(gz.items())))
    T.check("%s: RETR sends each file's bytes" % what, got == exp,
            [u for u in got if got[u] != exp.get(u)])


def check_way(what, s, short):
    """short: the count the shortcut must log; None: the long way."""
    said = [l for l in s.log.splitlines() if b"index" in l or LONG in l]
    if short is None:
        T.check("%s: the long way (cur/ listed)" % what,
                s.long and s.short is None, said)
    else:
        T.check("%s: index: cur unchanged, %d messages" % (what, short),
                s.short == short and not s.long, said)


def long_way(srv, what, s, want=None):
    check_way(what, s, None)
    check_list(srv, what, s, want)
    return s


def settle(srv, what):
    """Wait out the 2 seconds, let a session store cur/, and check that
    the next one takes the shortcut; return that one."""
    time.sleep(STILL)
    session(srv)
    s = session(srv)
    check_way(what, s, len(on_disk(srv)))
    return s


def query(srv, sql, args=()):
    """The index's first row for sql, or None; read while no session
    runs (the last one's close took the WAL in)."""
    db = sqlite3.connect("file:%s?immutable=1" % index_path(srv), uri=True)
    try:
        return db.execute(sql, args).fetchone()
    finally:
        db.close()


def curstate(srv):
    """The stored cur/: (dev, ino, size, mtime, ctime) or None."""
    return query(srv, "SELECT dev, ino, size, mtime, ctime FROM curstate")


def edit_index(srv, sqls, fresh=False):
    """Change the index while no session runs; its files stay the
    user's."""
    idx = index_path(srv)
    for suffix in ("", "-wal", "-shm", "-journal") if fresh else ():
        if os.path.exists(idx + suffix):
            os.unlink(idx + suffix)
    db = sqlite3.connect(idx)
    for sql, args in sqls:
        db.execute(sql, args)
    db.commit()
    db.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(idx + suffix):
            os.chown(idx + suffix, srv.user(USER).uid, srv.user(USER).gid)


def traced(srv):
    """A session under strace -f of the master: (session, trace lines),
    lines None if strace could not trace it."""
    out = os.path.join(srv.tmp, "strace.out")
    p = subprocess.Popen(["strace", "-f", "-qq", "-y", "-s", "256", "-e",
                          "trace=%file,getdents,getdents64", "-o", out,
                          "-p", str(srv.pid)], stderr=subprocess.DEVNULL)

    def attached():
        st = T._read("/proc/%d/status" % srv.pid) or ""
        return re.search(r"^TracerPid:\s+[1-9]", st, re.M)
    try:
        ok = T.wait_for(attached, timeout=10) and p.poll() is None
        s = session(srv)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        p.wait(30)
    lines = (T._read(out) or "").splitlines() if ok else []
    if not any(re.search(r'execve\("[^"]*/pop3d-mailbox"', l)
               for l in lines):
        T.note("strace could not trace the mailbox process: its checks "
               "are skipped")
        return s, None
    return s, lines


def cur_use(lines):
    """(lines listing cur/, names of files opened in cur/)."""
    lists = [l for l in lines
             if re.search(r"getdents(64)?\(\d+<[^>]*/Maildir/cur>", l)]
    opens = re.findall(r'open(?:at2?)?\(.*?"(?:/?cur/|[^"]*/Maildir/cur/)'
                       r'([^"]+)"', "\n".join(lines))
    return lists, opens


def test_shortcut(srv):
    with T.guard("a: the shortcut"):
        strace = shutil.which("strace") is not None
        if not strace:
            T.note("strace not installed: its checks are skipped")
        s1, t1 = traced(srv) if strace else (session(srv), None)
        check_way("a: session 1", s1, None)
        check_list(srv, "a: session 1", s1)
        s2, t2 = traced(srv) if strace else (session(srv), None)
        check_way("a: session 2", s2, 20)
        T.check("a: session 2 lists what session 1 did (UIDL, LIST, RETR)",
                (s2.uidl, s2.sizes, s2.bodies) ==
                (s1.uidl, s1.sizes, s1.bodies), "")
        if t1 is None or t2 is None:
            return
        lists, opens = cur_use(t1)
        T.check("a: strace: session 1 lists cur/ and opens its files",
                lists and set(opens) == set(os.listdir(cur_dir(srv))),
                (len(lists), collections.Counter(opens)))
        lists, opens = cur_use(t2)
        T.check("a: strace: session 2 opens cur/ itself (fstat)",
                any(re.search(r'open(at)?\(.*"/cur", .*O_DIRECTORY', l)
                    for l in t2), "")
        T.check("a: strace: session 2 does not list cur/", not lists,
                lists[:2])
        T.check("a: strace: session 2 opens each file in cur/ once, for "
                "its RETR", sorted(opens) == sorted(os.listdir(cur_dir(srv))),
                collections.Counter(opens))


def test_changes(srv):
    cur = cur_dir(srv)
    with T.guard("b: new mail"):
        srv.deliver(USER, name_of(21), body(21))
        s = long_way(srv, "b: new mail", session(srv))
    with T.guard("c: a file put into cur/"):
        settle(srv, "c: before, the index knows cur/")
        put_cur(srv, 22, ":2,")
        s = long_way(srv, "c: a file put into cur/", session(srv))
    with T.guard("d: another program renames a file"):
        before = settle(srv, "d: before, the index knows cur/")
        os.rename(os.path.join(cur, name_of(5) + ":2,S"),
                  os.path.join(cur, name_of(5) + ":2,RS"))
        s = session(srv)
        check_way("d: renamed", s, None)
        T.check("d: renamed: UIDL as before", s.uidl == before.uidl, "")
        check_list(srv, "d: renamed", s)
        s = settle(srv, "d: 2.5 s later")
        check_list(srv, "d: 2.5 s later, the shortcut", s)
        T.check("d: the index has the new name",
                query(srv, "SELECT name FROM msg WHERE base = ?",
                      (name_of(5),)) == (name_of(5) + ":2,RS",), "")
        T.check("d: the shortcut opens the new name, no search",
                b"is now cur/" not in s.log, s.log[-300:])
    with T.guard("e: another program removes a file"):
        os.unlink(os.path.join(cur, name_of(7) + ":2,S"))
        s = long_way(srv, "e: removed", session(srv))
    with T.guard("f: DELE"):
        before = settle(srv, "f: before, the index knows cur/")
        n = len(before.uidl)
        k = [i for i, u in before.uidl.items() if u == name_of(9)][0]
        session(srv, dele=[k])
        T.check("f: DELE removed the file", name_of(9) not in on_disk(srv),
                "")
        s = session(srv)
        check_way("f: after DELE", s, None)
        T.check("f: after DELE: %d messages" % (n - 1),
                len(s.uidl) == n - 1, len(s.uidl))
        check_list(srv, "f: after DELE", s)
        s2 = settle(srv, "f: 2.5 s later")
        T.check("f: the shortcut lists what the long way did, %d" % (n - 1),
                by_uidl(s2) == by_uidl(s) and len(s2.uidl) == n - 1, "")


def test_unreadable(srv):
    with T.guard("g: a file the user cannot read"):
        path = os.path.join(cur_dir(srv), name_of(23) + ":2,")
        with open(path, "wb") as f:
            f.write(body(23))
        os.chown(path, 0, 0)
        os.chmod(path, 0o600)
        time.sleep(STILL)
        s = long_way(srv, "g: unreadable", session(srv),
                     on_disk(srv, leave_out=[name_of(23)]))
        T.check("g: the log says it is not listed",
                b"%s:2,: not listed" % name_of(23).encode() in s.log,
                s.log[-300:])
        T.check("g: cur/ with a file left out is not stored",
                curstate(srv) is None, curstate(srv))
        check_way("g: the next session", session(srv), None)
        ctime = os.stat(cur_dir(srv)).st_ctime_ns
        os.chmod(path, 0o644)
        T.check("g: chmod leaves cur/ as it was",
                os.stat(cur_dir(srv)).st_ctime_ns == ctime, "")
        long_way(srv, "g: readable", session(srv))


def test_rebuild(srv):
    with T.guard("i: a row whose name is not its base's"):
        before = settle(srv, "i: before, the index knows cur/")
        edit_index(srv, [("UPDATE msg SET name = ? WHERE base = ?",
                          ("1799999999.M0P0.other:2,S", name_of(3)))])
        s = session(srv)
        T.check("i: the log says the index is rebuilt",
                b"rebuilding" in s.log, s.log[-300:])
        T.check("i: the same unique-ids",
                sorted(s.uidl.values()) == sorted(before.uidl.values()), "")
        check_list(srv, "i: rebuilt", s)


def test_v2(srv):
    with T.guard("h: an index of version 2"):
        rows = [("INSERT INTO msg (base, uidl, size) VALUES (?, ?, ?)",
                 (b, "kept-from-v2" if b == name_of(2) else b,
                  len(T.expected(d))))
                for b, d in sorted(on_disk(srv).items())]
        edit_index(srv, [(q, ()) for q in V2] + rows +
                   [("PRAGMA user_version=2", ())], fresh=True)
        KEPT[name_of(2)] = "kept-from-v2"
        s = session(srv)
        check_way("h: the upgrading session", s, None)
        T.check("h: the log says upgraded", b"index: upgraded" in s.log,
                s.log[-300:])
        T.check("h: the unique-ids of version 2 kept",
                sorted(s.uidl.values()) == sorted(r[1][1] for r in rows),
                s.uidl)
        check_list(srv, "h: upgraded", s)
        s3 = settle(srv, "h: 2.5 s later, the next-but-one session")
        T.check("h: the shortcut keeps the unique-ids of version 2",
                by_uidl(s3) == by_uidl(s), "")


def test_mtime_back(srv):
    with T.guard("j: cur/'s mtime put back"):
        settle(srv, "j: before, the index knows cur/")
        known = curstate(srv)
        cur = cur_dir(srv)
        put_cur(srv, 24)
        os.utime(cur, ns=(os.stat(cur).st_atime_ns, known[3]))
        st = os.stat(cur)
        T.check("j: cur/ has the stored mtime, a new ctime",
                st.st_mtime_ns == known[3] and st.st_ctime_ns != known[4],
                (st.st_mtime_ns, st.st_ctime_ns, known))
        s = long_way(srv, "j: mtime put back", session(srv))
        T.check("j: the new file is listed", name_of(24) in s.uidl.values(),
                s.uidl)


def main():
    with T.Server(users=[(USER, PASSWORD, "bcrypt")]) as srv:
        for i in range(1, 21):
            put_cur(srv, i)
        time.sleep(STILL)
        test_shortcut(srv)
        test_changes(srv)
        test_unreadable(srv)
        test_rebuild(srv)
        test_v2(srv)
        test_mtime_back(srv)
        T.check("server still running at the end", srv.alive(), "")


T.run(main)
