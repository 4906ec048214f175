"""One session per maildrop: a second login gets -ERR [IN-USE], the lock
goes when its holder quits or is killed, and before the reply to QUIT: a
client that logs in again at once is never refused.  For mbox maildrops, the locks a
local delivery agent sees: the dot-lock and fcntl/flock locks held for
the whole session, a delivery that waits for the session, a session that
waits for a delivery, and stale dot-locks."""

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import maildroplib as M  # noqa: E402

INUSE = b"-ERR [IN-USE] Mailbox in use by another session.\r\n"
LOCKED = b"-ERR [IN-USE] Mailbox locked by another program.\r\n"


def stat(c):
    r = c.cmd(b"STAT\r\n")
    return tuple(int(x) for x in r.split()[1:3]) if r.startswith(b"+OK") \
        else None


def test_in_use(srv, kind, count):
    """count: the messages in the maildrop."""
    with T.guard("%s: in use" % kind):
        a, r = M.login_raw(srv, "alice")
        T.check("%s: first login +OK" % kind, r.startswith(b"+OK"), r)
        b, r = M.login_raw(srv, "alice")
        T.check("%s: second login: %s" % (kind, INUSE.decode().strip()),
                r == INUSE, r)
        T.check("%s: the refused connection is closed" % kind, b.closed(),
                "still open")
        b.close()
        T.check("%s: the first session goes on" % kind,
                stat(a) is not None and stat(a)[0] == count, stat(a))
        r = a.cmd(b"QUIT\r\n")
        a.close()
        srv.wait_sessions_done()
        c, r = M.login_raw(srv, "alice")
        T.check("%s: login after the holder's QUIT: +OK" % kind,
                r.startswith(b"+OK"), r)
        c.cmd(b"QUIT\r\n")
        c.close()
    srv.wait_sessions_done()

    with T.guard("%s: holder killed" % kind):
        a, r = M.login_raw(srv, "alice")
        T.check("%s: login +OK" % kind, r.startswith(b"+OK"), r)
        r = a.cmd(b"DELE 1\r\n")
        pid = M.session_pid(srv, "alice")
        os.kill(pid, signal.SIGKILL)
        T.check("%s: the killed session's connection closes" % kind,
                a.closed(), "still open")
        a.close()
        T.check("%s: the killed holder is gone" % kind,
                srv.wait_sessions_done(), srv.mailbox_pids())
        c, r = M.login_raw(srv, "alice")
        T.check("%s: login after kill -9 of the holder: +OK" % kind,
                r.startswith(b"+OK"), r)
        T.check("%s: DELE of the killed session undone" % kind,
                stat(c) is not None and stat(c)[0] == count, stat(c))
        c.cmd(b"QUIT\r\n")
        c.close()
    srv.wait_sessions_done()


def relogin(srv, kind, rounds=40):
    """QUIT's +OK, then at once the next login, as a client polling in a
    loop: the maildrop is free by the time the reply arrives."""
    with T.guard("%s: login again right after QUIT" % kind):
        bad = []
        for i in range(rounds):
            c, r = M.login_raw(srv, "alice")
            if not r.startswith(b"+OK"):
                bad.append((i, r))
                c.close()
                continue
            r = c.cmd(b"QUIT\r\n")
            c.close()
            if not r.startswith(b"+OK"):
                bad.append((i, r))
        T.check("%s: %d logins, each right after the last QUIT: all +OK"
                % (kind, rounds), not bad, bad[:3])
    srv.wait_sessions_done()


def other_users(srv, kind):
    with T.guard("%s: other users" % kind):
        a, r = M.login_raw(srv, "alice")
        b, r2 = M.login_raw(srv, "bob")
        T.check("%s: alice's session does not lock bob out" % kind,
                r.startswith(b"+OK") and r2.startswith(b"+OK"), r2)
        a.cmd(b"QUIT\r\n")
        b.cmd(b"QUIT\r\n")
        a.close()
        b.close()
    srv.wait_sessions_done()


def maildir_tests():
    with T.Server(users=[("alice", "alice-pw"), ("bob", "bob-pw")]) as srv:
        for i in range(3):
            srv.deliver("alice", "17000000%02d.M%dP1.lock" % (i, i),
                        b"Subject: %d\n\nbody\n" % i)
        srv.deliver("bob", "1700000000.M1P1.lock", b"Subject: b\n\nb\n")
        test_in_use(srv, "Maildir", 3)
        relogin(srv, "Maildir")
        other_users(srv, "Maildir")


def delivery_waits(srv, u):
    """A delivery during a session finds every lock taken, and waits."""
    with T.guard("mbox: delivery during a session"):
        a, r = M.login_raw(srv, "alice")
        T.check("mbox: login +OK", r.startswith(b"+OK"), r)
        lock = u.mbox + ".lock"
        st = os.stat(lock) if os.path.exists(lock) else None
        T.check("mbox: the dot-lock exists during the session",
                st is not None, os.listdir(srv.spool))
        T.check("mbox: the dot-lock is root's (the spool is root's)",
                st is not None and st.st_uid == 0, st)
        with open(lock) as f:
            holder = f.read().strip()
        T.check("mbox: the dot-lock names a live process (liblockfile)",
                holder.isdigit() and os.path.exists("/proc/" + holder),
                holder)
        fd = os.open(u.mbox, os.O_RDWR)
        try:
            for name, how in (("fcntl", fcntl.lockf), ("flock",
                                                       fcntl.flock)):
                try:
                    how(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    T.check("mbox: %s lock held by the session" % name,
                            False, "got the lock")
                    how(fd, fcntl.LOCK_UN)
                except OSError:
                    T.check("mbox: %s lock held by the session" % name,
                            True)
        finally:
            os.close(fd)
        size = os.path.getsize(u.mbox)
        done = []
        t = threading.Thread(target=lambda: done.append(
            M.deliver_mbox(u.mbox, b"Subject: late\n\nwaited\n") or 1))
        t.start()
        time.sleep(0.7)
        T.check("mbox: the delivery waits while the session runs",
                not done and os.path.getsize(u.mbox) == size, done)
        r = a.cmd(b"QUIT\r\n")
        a.close()
        t.join(20)
        T.check("mbox: the delivery goes through after QUIT", done, "")
        T.check("mbox: no dot-lock left after the session and delivery",
                not os.path.exists(lock), os.listdir(srv.spool))
    srv.wait_sessions_done()


def session_waits(srv, u, dotlock, kernel, what):
    """A session that starts during a delivery waits for it."""
    with T.guard("mbox: login during a delivery (%s)" % what):
        with M.mbox_locked(u.mbox, dotlock=dotlock, kernel=kernel) as fd:
            result = []
            t0 = time.monotonic()
            th = threading.Thread(target=lambda: result.append(
                M.login_raw(srv, "alice")))
            th.start()
            time.sleep(1.2)
            n = len(M.mbox_messages(u.mbox))
            os.write(fd, M.mbox_entry(b"Subject: during\n\n%s\n" %
                                      what.encode()))
        th.join(20)
        took = time.monotonic() - t0
        T.check("mbox: login waits for a delivery holding the %s" % what,
                result and result[0][1].startswith(b"+OK") and took >= 1.0,
                "%s after %.1fs" % (result and result[0][1], took))
        if result:
            c = result[0][0]
            T.check("mbox: the session sees the message delivered (%s)" %
                    what, stat(c) is not None and stat(c)[0] == n + 1,
                    (stat(c), n))
            c.cmd(b"QUIT\r\n")
            c.close()
    srv.wait_sessions_done()


def lock_timeout(srv, u):
    with T.guard("mbox: dot-lock held too long"):
        with M.mbox_locked(u.mbox, dotlock=True, kernel=False):
            t0 = time.monotonic()
            c, r = M.login_raw(srv, "alice")
            took = time.monotonic() - t0
            c.close()
        T.check("mbox: a dot-lock held throughout: %s" %
                LOCKED.decode().strip(), r == LOCKED, r)
        T.check("mbox: ... after a bounded wait (%.1fs)" % took,
                5 <= took <= 15, took)
    srv.wait_sessions_done()


def stale_locks(srv, u):
    lock = u.mbox + ".lock"
    with T.guard("mbox: stale dot-locks"):
        p = subprocess.Popen(["true"])
        p.wait()
        with open(lock, "w") as f:
            f.write("%d\n" % p.pid)
        c, r = M.login_raw(srv, "alice")
        T.check("mbox: a dot-lock naming a dead process is stale",
                r.startswith(b"+OK"), r)
        c.cmd(b"QUIT\r\n")
        c.close()
        srv.wait_sessions_done()
        T.check("mbox: ... and gone afterwards", not os.path.exists(lock),
                os.listdir(srv.spool))
        with open(lock, "w") as f:
            f.write("")
        old = time.time() - 3600
        os.utime(lock, (old, old))
        c, r = M.login_raw(srv, "alice")
        T.check("mbox: a dot-lock untouched for an hour is stale",
                r.startswith(b"+OK"), r)
        c.cmd(b"QUIT\r\n")
        c.close()
        srv.wait_sessions_done()
        T.check("mbox: ... and gone afterwards", not os.path.exists(lock),
                os.listdir(srv.spool))
    srv.wait_sessions_done()


def killed_releases(srv, u):
    with T.guard("mbox: kill -9 releases every lock"):
        a, r = M.login_raw(srv, "alice")
        pid = M.session_pid(srv, "alice")
        os.kill(pid, signal.SIGKILL)
        a.close()
        gone = T.wait_for(lambda: not os.path.exists(u.mbox + ".lock"), 5)
        T.check("mbox: the dot-lock goes when the session is killed", gone,
                os.listdir(srv.spool))
        M.deliver_mbox(u.mbox, b"Subject: after kill\n\nx\n", wait=3)
        T.check("mbox: a delivery gets the locks right after", True)
    srv.wait_sessions_done()


def mbox_tests():
    with M.MboxServer(users=[("alice", "alice-pw"), ("bob", "bob-pw")]) \
            as srv:
        u = srv.user("alice")
        for i in range(3):
            M.deliver_mbox(u.mbox, b"Subject: %d\n\nbody %d\n" % (i, i))
        test_in_use(srv, "mbox", 3)
        relogin(srv, "mbox")
        delivery_waits(srv, u)
        session_waits(srv, u, True, False, "dot-lock")
        session_waits(srv, u, False, True, "fcntl and flock locks")
        stale_locks(srv, u)
        killed_releases(srv, u)
        lock_timeout(srv, u)
        other_users(srv, "mbox")
        T.check("server still running at the end", srv.alive(), "")


def main():
    maildir_tests()
    mbox_tests()


T.run(main)
