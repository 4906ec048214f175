"""SIGTERM to the master with sessions idle: it exits within 10 s, takes
every login and mailbox process with it, tells or disconnects the
clients, deletes nothing that was DELEd without QUIT, and removes its
control socket."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import opslib as O  # noqa: E402

USERS = [("alice", "alice-pw", "bcrypt"), ("bob", "bob-pw", "sha512")]

MSGS = [b"Subject: one\n\nfirst\n", b"Subject: two\n\nsecond\n"]

SHUTDOWN = b"-ERR [SYS/TEMP] Server shutting down."


def ours(pid):
    """pid is still one of our pop3d processes (not a reused pid)."""
    exe = T.proc_exe(pid) or ""
    return exe.startswith(T.BUILD + os.sep)


def last_words(c, timeout=5):
    """What a logged-in idle connection gets: a line, or b"" at EOF."""
    c.sock.settimeout(timeout)
    try:
        return c.readline()
    except (EOFError, ConnectionError, T.ssl.SSLError):
        return b""
    except OSError as e:    # socket.timeout: neither a line nor EOF
        return "nothing within %ds (%s)" % (timeout, type(e).__name__)


def main():
    with T.Server(users=USERS, control=True, conf_extra=O.NO_DELAY) as srv:
        for user in ("alice", "bob"):
            for i, m in enumerate(MSGS):
                srv.deliver(user, "17000000%02d.M%dP1.test" % (i, i), m)
        with T.guard("SIGTERM"):
            # alice: logged in, DELE 1 and 2, idle.  bob: logged in, idle.
            # A third connection idle in AUTHORIZATION.
            a = srv.raw()
            a.readline()
            a.cmd(b"USER alice\r\n")
            r = a.cmd(b"PASS alice-pw\r\n")
            T.check("alice logged in", r.startswith(b"+OK"), r)
            r1 = a.cmd(b"DELE 1\r\n")
            r2 = a.cmd(b"DELE 2\r\n")
            T.check("alice: DELE 1 and 2",
                    r1.startswith(b"+OK") and r2.startswith(b"+OK"),
                    (r1, r2))
            b = srv.pop3s("bob")
            idle = srv.raw()
            idle.readline()
            before = {u: srv.messages(u) for u in ("alice", "bob")}
            kids = srv.children()
            T.check("before SIGTERM: 2 mailbox processes",
                    len([p for p, k in kids if k == "mailbox"]) == 2, kids)
            T.check("before SIGTERM: the control socket exists",
                    os.path.exists(srv.ctl_sock), srv.ctl_sock)

            t0 = time.monotonic()
            os.kill(srv.pid, signal.SIGTERM)
            try:
                rc = srv.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                rc = None
            took = time.monotonic() - t0
            T.check("SIGTERM: the master exits within 10s", rc is not None,
                    "still running after %.1fs" % took)
            T.check("SIGTERM: exit status 0", rc == 0, rc)
            T.note("master exited %.2fs after SIGTERM" % took)

            left = T.wait_for(lambda: not [p for p, _ in kids if ours(p)], 2)
            T.check("SIGTERM: no pop3d-login or pop3d-mailbox process "
                    "remains", left,
                    [(p, k) for p, k in kids if ours(p)])

            w = last_words(a)
            T.check("SIGTERM: alice gets '%s' or a closed connection" %
                    SHUTDOWN.decode(),
                    w == b"" or (isinstance(w, bytes) and
                                 w.startswith(SHUTDOWN)), w)
            if isinstance(w, bytes) and w:
                T.check("SIGTERM: then alice's connection closes",
                        a.closed(5), "still open")
            a.close()
            try:
                got = b.noop()
            except T.poplib.error_proto as e:
                got = e.args[0] if e.args else b"-ERR"
                if isinstance(got, str):    # poplib's own '-ERR EOF'
                    got = got.encode()
            except (OSError, EOFError) as e:
                got = b""
            T.check("SIGTERM: bob sees -ERR or a closed connection",
                    not got.startswith(b"+OK"), got)
            try:
                b.close()
            except OSError:
                pass
            w = last_words(idle)
            T.check("SIGTERM: the connection in AUTHORIZATION is closed "
                    "or told", not isinstance(w, str) and
                    not w.startswith(b"+OK"), w)
            idle.close()

            after = {u: srv.messages(u) for u in ("alice", "bob")}
            T.check("SIGTERM: nothing DELEd without QUIT is deleted",
                    after == before, "before %s after %s" % (before, after))
            T.check("SIGTERM: the control socket file is removed",
                    not os.path.exists(srv.ctl_sock), srv.ctl_sock)
            text = O.log_text(srv)
            T.check("SIGTERM: log says shutting down",
                    "shutting down" in text, text[-300:])
            T.check("SIGTERM: no child outlived the grace period",
                    "still running after" not in text, text[-300:])
            T.check("SIGTERM: the sessions' ends are logged",
                    text.count("logged out") >= 2, text[-600:])
            T.check("SIGTERM: the listener is closed",
                    O.refused(srv.port), "port %d" % srv.port)


T.run(main)
