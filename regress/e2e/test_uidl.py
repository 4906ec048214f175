"""UIDL and TOP over a Maildir, and the index as a cache: unique-ids are
1 to 70 octets of 0x21-0x7e, unique, and stable across sessions, a
restart, new mail, other programs' renames and removals, and a missing,
damaged or old index; an index that cannot be written refuses the
session; a stale one never gives a wrong RETR.  Then mpop and fetchmail
with their UIDL caches fetch only new mail on their second run."""

import os
import re
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import maildroplib as M  # noqa: E402

USER, PASSWORD = "alice", "alice-pw"
UIDL_RE = re.compile(r"^[\x21-\x7e]{1,70}$")
TEMP = b"-ERR [SYS/TEMP] Mailbox unavailable, try later.\r\n"


def body(i):
    return (b"From: s%d@example.org\nSubject: message %d\n\nline 1\n"
            b"line 2\n.dot line\nline 4\n" % (i, i))


def name_of(i):
    return "17%08d.M%dP%d.uidl" % (i, i, i)


def index_path(srv):
    return os.path.join(srv.user(USER).maildir, "pop3d.index")


def session_uidls(srv):
    c, r = M.login_raw(srv, USER)
    if not r.startswith(b"+OK"):
        c.close()
        raise RuntimeError("login: %r" % r)
    u = M.uidl_map(c)
    c.cmd(b"QUIT\r\n")
    c.close()
    srv.wait_sessions_done()
    return u


def by_content(srv, uidls):
    """{message subject: uidl} of a session, via RETR."""
    c, r = M.login_raw(srv, USER)
    out = {}
    for n, u in uidls.items():
        _, b = M.retr(c, n)
        out[re.search(rb"Subject: ([^\r\n]*)", b).group(1)] = u
    c.cmd(b"QUIT\r\n")
    c.close()
    srv.wait_sessions_done()
    return out


def test_commands(srv):
    with T.guard("UIDL and TOP commands"):
        c, r = M.login_raw(srv, USER)
        r = c.cmd(b"CAPA\r\n")
        caps = c.multiline().split(b"\r\n")
        T.check("CAPA after login lists TOP and UIDL",
                b"TOP" in caps and b"UIDL" in caps, caps)
        u = M.uidl_map(c)
        T.check("UIDL lists every message", sorted(u) == [1, 2, 3, 4, 5],
                u)
        T.check("UIDL: 1 to 70 octets of 0x21-0x7e",
                all(UIDL_RE.match(x) for x in u.values()), u)
        T.check("UIDL: unique", len(set(u.values())) == len(u), u)
        T.check("UIDL of a Maildir message is its base name",
                sorted(u.values()) == sorted(name_of(i) for i in
                                             range(1, 6)), u)
        r = c.cmd(b"UIDL 2\r\n")
        T.check("UIDL 2: +OK 2 <uid>",
                r == b"+OK 2 %s\r\n" % u[2].encode(), r)
        for bad in (b"UIDL 0", b"UIDL 6", b"UIDL x", b"UIDL 1 2"):
            r = c.cmd(bad + b"\r\n")
            T.check("%s: -ERR" % bad.decode(), r.startswith(b"-ERR"), r)
        c.cmd(b"DELE 2\r\n")
        r = c.cmd(b"UIDL 2\r\n")
        T.check("UIDL of a deleted message: -ERR No such message.",
                r == b"-ERR No such message.\r\n", r)
        u2 = M.uidl_map(c)
        T.check("UIDL leaves the deleted message out, numbers stay",
                u2 == {k: v for k, v in u.items() if k != 2}, u2)

        r, b = M.retr(c, 3, top=0)
        T.check("TOP 3 0: +OK Top of message 3 follows.",
                r == b"+OK Top of message 3 follows.\r\n", r)
        want = T.expected(body(3)).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
        T.check("TOP 3 0: the header and the empty line", b == want,
                (b, want))
        _, b = M.retr(c, 3, top=2)
        T.check("TOP 3 2: two body lines",
                b == want + b"line 1\r\nline 2\r\n", b)
        _, b = M.retr(c, 3, top=3)
        T.check("TOP 3 3: a dot line stuffed and unstuffed",
                b == want + b"line 1\r\nline 2\r\n.dot line\r\n", b)
        _, b = M.retr(c, 3, top=99999999999999999999)
        T.check("TOP 3 <huge>: the whole message",
                b == T.expected(body(3)), b)
        for bad, why in ((b"TOP 3", b"-ERR Missing line count."),
                         (b"TOP 3 x", b"-ERR Invalid line count."),
                         (b"TOP 3 -1", b"-ERR Invalid line count."),
                         (b"TOP 3 1 2", b"-ERR Too many arguments."),
                         (b"TOP 2 1", b"-ERR No such message."),
                         (b"TOP 9 1", b"-ERR No such message."),
                         (b"TOP x 1", b"-ERR Invalid message number."),
                         (b"TOP", b"-ERR Missing message number.")):
            r = c.cmd(bad + b"\r\n")
            T.check("%s: %s" % (bad.decode(), why.decode()),
                    r == why + b"\r\n", r)
        r = c.cmd(b"STAT\r\n")
        T.check("TOP counts as no retrieval, STAT unchanged",
                r.startswith(b"+OK 4 "), r)
        c.cmd(b"RSET\r\n")
        c.cmd(b"QUIT\r\n")
        c.close()
    srv.wait_sessions_done()


def test_stable(srv):
    with T.guard("UIDL stable"):
        first = session_uidls(srv)
        T.check("UIDL the same in the next session",
                session_uidls(srv) == first, "")
        srv._stop()
        srv._start()
        T.check("UIDL the same after a restart of pop3d",
                session_uidls(srv) == first, "")

        # New mail: new unique-ids, the old ones stay.
        for i in (6, 7):
            srv.deliver(USER, name_of(i), body(i))
        u = session_uidls(srv)
        T.check("new mail keeps the old unique-ids and numbers",
                {k: v for k, v in u.items() if k <= 5} == first, u)
        T.check("new mail gets new unique-ids",
                set(u.values()) - set(first.values()) ==
                {name_of(6), name_of(7)}, u)

        # Another program renames (flags) and removes files.
        cur = os.path.join(srv.user(USER).maildir, "cur")
        names = sorted(os.listdir(cur))
        for n in names:
            if n.startswith(name_of(3)):
                os.rename(os.path.join(cur, n),
                          os.path.join(cur, name_of(3) + ":2,FS"))
            if n.startswith(name_of(4)):
                os.unlink(os.path.join(cur, n))
        u2 = by_content(srv, session_uidls(srv))
        want = {b"message %d" % i: name_of(i) for i in (1, 2, 3, 5, 6, 7)}
        T.check("renamed flags keep the unique-id, a removed file is gone",
                u2 == want, u2)
    return want


def test_bad_names(srv):
    """Base names a unique-id cannot be: derived ones, stable."""
    odd = ["1700000100.M1P1.has space", "1700000101.M1P1." + "x" * 80,
           "1700000102.M1P1.caf\xe9"]
    with T.guard("odd names"):
        for i, n in enumerate(odd):
            path = os.path.join(os.fsencode(srv.user(USER).maildir),
                                b"new", n.encode("latin-1"))
            with open(path, "wb") as f:
                f.write(b"Subject: odd %d\n\nx\n" % i)
            os.chown(path, srv.user(USER).uid, srv.user(USER).gid)
        u = by_content(srv, session_uidls(srv))
        odd_u = [u[b"odd %d" % i] for i in range(3)]
        T.check("odd names: unique-ids 1 to 70 of 0x21-0x7e",
                all(UIDL_RE.match(x) for x in odd_u), odd_u)
        T.check("odd names: unique-ids unique",
                len(set(u.values())) == len(u), u)
        return u


def test_index(srv, want):
    idx = index_path(srv)
    with T.guard("index lost"):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(idx + suffix):
                os.unlink(idx + suffix)
        u = by_content(srv, session_uidls(srv))
        T.check("index removed: the same unique-ids", u == want, u)
    with T.guard("index damaged"):
        with open(idx, "r+b") as f:
            f.seek(0)
            f.write(b"this is no SQLite database" * 200)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(idx + suffix):
                os.unlink(idx + suffix)
        u = by_content(srv, session_uidls(srv))
        T.check("index damaged: rebuilt, the same unique-ids", u == want,
                u)
        log = open(srv.log, "rb").read()
        T.check("index damaged: the log says it was rebuilt",
                b"rebuilding" in log, "")
    with T.guard("index of version 1"):
        # The first schema, with a unique-id we could not derive: kept.
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(idx + suffix):
                os.unlink(idx + suffix)
        cur = os.path.join(srv.user(USER).maildir, "cur")
        db = sqlite3.connect(idx)
        db.execute("CREATE TABLE msg (id INTEGER PRIMARY KEY, base TEXT "
                   "UNIQUE NOT NULL, uidl TEXT UNIQUE NOT NULL, size "
                   "INTEGER NOT NULL)")
        for n in sorted(os.listdir(cur)):
            base = n.split(":")[0]
            if not UIDL_RE.match(base):
                continue        # left for the session to add
            with open(os.path.join(cur, n), "rb") as f:
                size = len(T.expected(f.read()))
            uidl = "kept-from-v1" if base == name_of(1) else base
            db.execute("INSERT INTO msg (base, uidl, size) VALUES "
                       "(?, ?, ?)", (base, uidl, size))
        db.execute("PRAGMA user_version=1")
        db.commit()
        db.close()
        os.chown(idx, srv.user(USER).uid, srv.user(USER).gid)
        u = by_content(srv, session_uidls(srv))
        T.check("index of version 1: upgraded, its unique-ids kept",
                u.get(b"message 1") == "kept-from-v1" and
                u.get(b"message 2") == name_of(2), u)
    with T.guard("index read-only"):
        os.chmod(idx, 0o400)
        c, r = M.login_raw(srv, USER)
        T.check("index that cannot be written: %s" % TEMP.decode().strip(),
                r == TEMP, r)
        c.close()
        srv.wait_sessions_done()
        os.chmod(idx, 0o600)
        T.check("index writable again: login +OK",
                session_uidls(srv) is not None, "")
    with T.guard("index stale"):
        # A message file changed behind the index (a restore, say).
        name = [n for n in os.listdir(cur) if n.startswith(name_of(5))][0]
        path = os.path.join(cur, name)
        new = b"Subject: message 5\n\nreplaced, and longer than before\n"
        with open(path, "wb") as f:
            f.write(new)
        c, r = M.login_raw(srv, USER)
        n = [k for k, v in M.uidl_map(c).items() if v == name_of(5)][0]
        r, b = M.retr(c, n)
        T.check("stale index: RETR announces the file's true size",
                r == b"+OK %d octets\r\n" % len(T.expected(new)), r)
        T.check("stale index: RETR sends the file's bytes",
                b == T.expected(new), b)
        r = c.cmd(b"LIST %d\r\n" % n)
        T.check("stale index: LIST corrected after RETR",
                r == b"+OK %d %d\r\n" % (n, len(T.expected(new))), r)
        c.cmd(b"QUIT\r\n")
        c.close()
        srv.wait_sessions_done()
        c, r = M.login_raw(srv, USER)
        r = c.cmd(b"LIST %d\r\n" % n)
        T.check("stale index: corrected for the next session too",
                r == b"+OK %d %d\r\n" % (n, len(T.expected(new))), r)
        c.cmd(b"QUIT\r\n")
        c.close()
    srv.wait_sessions_done()


def read_dir(d):
    out = []
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out.append(f.read())
    return out


def run_mpop(srv, dest, user):
    cmd = ["mpop", "--host=127.0.0.1", "--port=%d" % srv.port,
           "--tls=on", "--tls-starttls=off", "--tls-trust-file=" + srv.cert,
           "--auth=user", "--user=" + user,
           "--passwordeval=echo " + srv.user(user).password,
           "--delivery=maildir," + dest, "--keep=on", "--only-new=on",
           "--received-header=off",
           "--uidls-file=" + os.path.join(srv.tmp, "mpop-uidls-" + user),
           "--timeout=30", "-q"]
    r = subprocess.run(cmd, capture_output=True, timeout=60,
                       env=dict(os.environ, HOME=srv.tmp))
    srv.wait_sessions_done()
    return r


def mpop_twice(srv, user, deliver, what):
    """mpop keeps the mail and its UIDL list: the second run fetches
    just the two messages delivered in between."""
    with T.guard("%s: mpop" % what):
        dest = os.path.join(srv.tmp, "mpop-" + user)
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(dest, sub))
        r = run_mpop(srv, dest, user)
        T.check("%s: mpop first run exits 0" % what, r.returncode == 0,
                r.stderr[-300:])
        n1 = len(read_dir(os.path.join(dest, "new")))
        deliver(1)
        deliver(2)
        r = run_mpop(srv, dest, user)
        T.check("%s: mpop second run exits 0" % what, r.returncode == 0,
                r.stderr[-300:])
        got = read_dir(os.path.join(dest, "new"))
        T.check("%s: mpop second run fetches only the 2 new messages" %
                what, len(got) == n1 + 2, "first %d, now %d" % (n1,
                                                                len(got)))
        return n1


def fetchmail_twice(srv, user, deliver, what):
    with T.guard("%s: fetchmail" % what):
        dest = os.path.join(srv.tmp, "fetchmail-" + user)
        os.mkdir(dest)
        rc = os.path.join(srv.tmp, "fetchmailrc-" + user)
        with open(rc, "w") as f:
            f.write('set no syslog\nset idfile "%s/fetchids-%s"\n' %
                    (srv.tmp, user))
            f.write("poll 127.0.0.1 protocol pop3 uidl port %d timeout 30\n"
                    % srv.port)
            f.write('  user "%s" there with password "%s" is "root" here\n'
                    % (user, srv.user(user).password))
            f.write('  ssl sslcertck sslcertfile "%s" '
                    'sslcommonname "localhost" keep\n' % srv.cert)
            f.write('  mda "/bin/sh -c \'cat > %s/$(date +%%s%%N)\'"\n' %
                    dest)
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=srv.tmp, FETCHMAILHOME=srv.tmp)

        def run():
            r = subprocess.run(["fetchmail", "-f", rc, "-N", "--pidfile",
                                os.path.join(srv.tmp, "fm.pid")],
                               capture_output=True, timeout=60, env=env)
            srv.wait_sessions_done()
            return r
        r = run()
        T.check("%s: fetchmail first run exits 0" % what,
                r.returncode == 0, r.stdout[-300:])
        n1 = len(os.listdir(dest))
        deliver(11)
        deliver(12)
        r = run()
        T.check("%s: fetchmail second run exits 0" % what,
                r.returncode == 0, r.stdout[-300:])
        n2 = len(os.listdir(dest))
        T.check("%s: fetchmail second run fetches only the 2 new" % what,
                n2 == n1 + 2, "first %d, now %d" % (n1, n2))


def test_clients():
    with T.Server(users=[("carol", "carol-pw"), ("dave", "dave-pw")]) \
            as srv:
        for user in ("carol", "dave"):
            for i in range(1, 5):
                srv.deliver(user, name_of(i), body(i))

        def deliver_to(user):
            return lambda k: srv.deliver(user, name_of(100 + k),
                                         body(100 + k))
        n1 = mpop_twice(srv, "carol", deliver_to("carol"), "Maildir")
        T.check("Maildir: mpop first run fetched all 4", n1 == 4, n1)
        fetchmail_twice(srv, "dave", deliver_to("dave"), "Maildir")


def main():
    with T.Server(users=[(USER, PASSWORD, "bcrypt")]) as srv:
        for i in range(1, 6):
            srv.deliver(USER, name_of(i), body(i),
                        "new" if i % 2 else "cur")
        test_commands(srv)
        want = test_stable(srv)
        odd = test_bad_names(srv)
        want.update({k: v for k, v in odd.items() if k.startswith(b"odd")})
        test_index(srv, want)
        T.check("server still running at the end", srv.alive(), "")
    test_clients()


T.run(main)
