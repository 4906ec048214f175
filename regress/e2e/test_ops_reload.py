"""Reload, by SIGHUP and by pop3ctl reload: sessions under way carry on,
new connections get the new users file, listeners, CAPA and certificate,
the old login processes leave once idle; a broken configuration is
refused and the old one keeps serving."""

import os
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import opslib as O  # noqa: E402

USERS = [("alice", "alice-old-pw", "bcrypt"), ("bob", "bob-pw", "bcrypt")]

MSGS = [b"Subject: one\n\nfirst\n", b"Subject: two\n\nsecond\n",
        b"Subject: three\n\nthird\n"]

EXTRA = O.NO_DELAY + "implementation yes\n"


def listen_line(port):
    return "listen on %s port %d tls pki localhost\n" % (T.HOST, port)


def set_conf(srv, add=(), remove=(), replace=()):
    """Edit srv's configuration: lines added at the end, lines removed,
    (old, new) lines replaced."""
    lines = O.read_file(srv.conf).splitlines(True)
    for old, new in replace:
        lines = [new if l == old else l for l in lines]
    lines = [l for l in lines if l not in remove]
    lines += list(add)
    O.write_file(srv.conf, "".join(lines))


def greets(port):
    try:
        return O.greeting(port).startswith(b"+OK")
    except (OSError, EOFError, T.ssl.SSLError):
        return False


def pop3s(srv, user, password=None, port=None):
    p = T.poplib.POP3_SSL(T.HOST, port or srv.port,
                          context=srv.context(verify=False),
                          timeout=T.TIMEOUT)
    p.user(user)
    p.pass_(password or srv.users[user].password)
    return p


def sighup(srv):
    """SIGHUP the master; True once the log says how it went."""
    start = O.log_size(srv)
    os.kill(srv.pid, signal.SIGHUP)
    m = O.wait_log(srv, r"configuration reloaded|reload failed", start, 15)
    return m.group(0) if m else None


def test_sighup(srv):
    """Users, a second listener and implementation no, by SIGHUP, while
    alice is logged in."""
    old = set(srv.login_pids())
    with T.guard("reload by SIGHUP"):
        T.check("before reload: CAPA lists IMPLEMENTATION",
                "IMPLEMENTATION" in (O.capa(srv) or []), O.capa(srv))
        s1 = srv.pop3s("alice")
        n, size = s1.stat()

        O.add_user(srv, "carol", "carol-pw")
        srv.deliver("carol", "1700000001.M1P1.test", MSGS[0])
        O.set_password(srv, "alice", "alice-new-pw")
        port2 = T.free_port()
        while port2 == srv.port:
            port2 = T.free_port()
        set_conf(srv, add=[listen_line(port2)],
                 replace=[("implementation yes\n", "implementation no\n")])
        T.check("SIGHUP: the new configuration is good (pop3d -n)",
                O.run([O.POP3D, "-n", "-f", srv.conf]).rc == 0, "")

        how = sighup(srv)
        T.check("SIGHUP: log says configuration reloaded",
                how == "configuration reloaded", how)
        T.check("SIGHUP: the master is still running", srv.alive(), "")

        # The session under way.
        T.check("SIGHUP: the open session's STAT works",
                s1.stat() == (n, size), "")
        _, lines, _ = s1.retr(1)
        T.check("SIGHUP: the open session's RETR works",
                T.joined(lines) == T.expected(MSGS[0]), lines[:3])
        r = O.ctl(srv, "show", "sessions")
        T.check("SIGHUP: show sessions still lists alice",
                " alice " in r.out, r)

        # Login processes: a new pool, the idle old one leaves.
        T.check("SIGHUP: new login processes (%d)" % srv.login_procs,
                T.wait_for(lambda: len(set(srv.login_pids()) - old) ==
                           srv.login_procs, 10),
                "old %s now %s" % (sorted(old), srv.login_pids()))
        T.check("SIGHUP: the idle old login process exits, the one "
                "relaying alice's session stays",
                T.wait_for(lambda: len(O.alive_pids(old)) == 1, 10),
                "old %s alive %s" % (sorted(old), O.alive_pids(old)))

        # New connections.
        T.check("SIGHUP: the new listener greets",
                T.wait_for(lambda: greets(port2), 10), "port %d" % port2)
        caps = O.capa(srv)
        T.check("SIGHUP: CAPA without IMPLEMENTATION",
                caps is not None and "IMPLEMENTATION" not in caps, caps)
        caps2 = O.capa(srv, port2)
        T.check("SIGHUP: CAPA on the new port without IMPLEMENTATION",
                caps2 is not None and "IMPLEMENTATION" not in caps2, caps2)
        r = O.login_reply(srv, "carol", "carol-pw")
        T.check("SIGHUP: the new user logs in", r.startswith(b"+OK"), r)
        T.wait_for(lambda: len(srv.mailbox_pids()) <= 1, 5)
        r = O.login_reply(srv, "carol", "carol-pw", port=port2)
        T.check("SIGHUP: the new user logs in on the new port",
                r.startswith(b"+OK"), r)
        T.wait_for(lambda: len(srv.mailbox_pids()) <= 1, 5)
        r = O.login_reply(srv, "alice", "alice-old-pw")
        T.check("SIGHUP: alice's old password is refused",
                r.startswith(b"-ERR [AUTH]"), r)

        r = s1.quit()
        T.check("SIGHUP: the open session's QUIT works",
                r.startswith(b"+OK"), r)
        srv.wait_sessions_done()
        T.check("SIGHUP: every old login process has left once idle",
                O.wait_gone(old, 10),
                "still there: %s" % O.alive_pids(old))
        T.check("SIGHUP: a full pool of new login processes",
                len(srv.login_pids()) == srv.login_procs and
                not set(srv.login_pids()) & old, srv.login_pids())
        r = O.login_reply(srv, "alice", "alice-new-pw")
        T.check("SIGHUP: alice's new password works",
                r.startswith(b"+OK"), r)
        srv.wait_sessions_done()
    return port2


def test_ctl_reload(srv, port2):
    """Undo it all with pop3ctl reload while carol's session, which came
    in on the listener that goes, is open."""
    old = set(srv.login_pids())
    with T.guard("pop3ctl reload"):
        s2 = pop3s(srv, "carol", port=port2)
        n, _ = s2.stat()
        # A connection still in AUTHORIZATION on an old login process.
        c0 = O.raw(srv)
        g = c0.readline()
        O.remove_user(srv, "carol")
        O.set_password(srv, "bob", "bob-new-pw")
        set_conf(srv, remove=[listen_line(port2)],
                 replace=[("implementation no\n", "implementation yes\n")])
        start = O.log_size(srv)
        r = O.ctl(srv, "reload")
        T.check("pop3ctl reload: exit 0", r.rc == 0, r)
        T.check("pop3ctl reload: says reloaded", "reloaded" in r.out, r)
        T.check("pop3ctl reload: log says configuration reloaded",
                O.wait_log(srv, "configuration reloaded", start, 5), "")

        with c0:
            r = c0.cmd(b"USER alice\r\n")
            if r.startswith(b"+OK"):
                r = c0.cmd(b"PASS alice-new-pw\r\n")
            T.check("pop3ctl reload: a connection accepted before it can "
                    "still log in", g.startswith(b"+OK") and
                    r.startswith(b"+OK"), (g, r))
            if r.startswith(b"+OK"):
                r = c0.cmd(b"STAT\r\n")
                T.check("pop3ctl reload: and its session works",
                        r.startswith(b"+OK"), r)
                c0.cmd(b"QUIT\r\n")
        T.check("pop3ctl reload: carol's open session works",
                s2.noop().startswith(b"+OK") and s2.stat()[0] == n, "")
        s2.dele(1)
        r = s2.quit()
        T.check("pop3ctl reload: carol's QUIT deletes",
                r.startswith(b"+OK") and srv.messages("carol") == [],
                (r, srv.messages("carol")))
        srv.wait_sessions_done()

        T.check("pop3ctl reload: the removed listener refuses connections",
                T.wait_for(lambda: O.refused(port2), 10), "port %d" % port2)
        T.check("pop3ctl reload: the first listener still greets",
                greets(srv.port), "")
        caps = O.capa(srv)
        T.check("pop3ctl reload: CAPA lists IMPLEMENTATION again",
                caps is not None and "IMPLEMENTATION" in caps, caps)
        r = O.login_reply(srv, "carol", "carol-pw")
        T.check("pop3ctl reload: the removed user is refused",
                r.startswith(b"-ERR [AUTH]"), r)
        r = O.login_reply(srv, "bob", "bob-pw")
        T.check("pop3ctl reload: bob's old password is refused",
                r.startswith(b"-ERR [AUTH]"), r)
        r = O.login_reply(srv, "bob", "bob-new-pw")
        T.check("pop3ctl reload: bob's new password works",
                r.startswith(b"+OK"), r)
        srv.wait_sessions_done()
        T.check("pop3ctl reload: the old login processes leave",
                O.wait_gone(old, 10), "still there: %s" % O.alive_pids(old))
        T.check("pop3ctl reload: stats survive the reloads",
                (O.parse_stats(O.ctl(srv, "show", "stats").out) or
                 {}).get("ok", 0) >= 5, "")


def broken(srv, what, apply, undo, via_ctl=True):
    """A reload with a broken configuration is refused; the server goes
    on with the old one."""
    logins = sorted(srv.login_pids())
    with T.guard("broken reload: %s" % what):
        caps_before = O.capa(srv)
        apply()
        start = O.log_size(srv)
        if via_ctl:
            r = O.ctl(srv, "reload")
            T.check("reload with %s: pop3ctl reload exits 1" % what,
                    r.rc == 1, r)
            T.check("reload with %s: pop3ctl says reload failed" % what,
                    "reload failed" in r.err, r)
            m = O.wait_log(srv, "reload failed", start, 5)
        else:
            os.kill(srv.pid, signal.SIGHUP)
            m = O.wait_log(srv, "reload failed|configuration reloaded",
                           start, 10)
        T.check("reload with %s: log says reload failed" % what,
                m is not None and m.group(0) == "reload failed",
                O.log_text(srv, start)[-500:])
        T.check("reload with %s: master still running" % what,
                srv.alive(), "")
        T.check("reload with %s: the same login processes" % what,
                sorted(srv.login_pids()) == logins,
                "before %s after %s" % (logins, sorted(srv.login_pids())))
        T.check("reload with %s: still greets" % what, greets(srv.port), "")
        T.check("reload with %s: the same CAPA" % what,
                O.capa(srv) == caps_before, (caps_before, O.capa(srv)))
        r = O.login_reply(srv, "bob", "bob-new-pw")
        T.check("reload with %s: the old users still log in" % what,
                r.startswith(b"+OK"), r)
        srv.wait_sessions_done()
        undo()


def test_broken(srv):
    good_conf = O.read_file(srv.conf)
    good_users = O.read_file(srv.users_file)

    def restore():
        O.write_file(srv.conf, good_conf)
        O.write_file(srv.users_file, good_users)

    def syntax():
        set_conf(srv, add=["implementation maybe\n"])
    broken(srv, "a syntax error", syntax, restore)

    def no_cert():
        O.write_file(srv.conf, good_conf.replace(
            'cert "%s"' % srv.cert,
            'cert "%s"' % os.path.join(srv.tmp, "missing-cert.pem")))
    broken(srv, "a missing cert file", no_cert, restore)
    broken(srv, "a missing cert file (SIGHUP)", no_cert, restore,
           via_ctl=False)

    def dup_user():
        line = [l for l in good_users.splitlines()
                if l.startswith("bob:")][0]
        O.write_file(srv.users_file, good_users + line.replace(
            "bob-new", "x") + "\n")
        set_conf(srv, replace=[("implementation yes\n",
                                "implementation no\n")])
    broken(srv, "a duplicate user in the users file", dup_user, restore)

    busy = socket.socket()
    try:
        busy.bind((T.HOST, 0))
        busy.listen(1)
        bport = busy.getsockname()[1]

        def port_taken():
            set_conf(srv, add=[listen_line(bport)],
                     replace=[("implementation yes\n",
                               "implementation no\n")])
        broken(srv, "a listener on a port in use", port_taken, restore)
    finally:
        busy.close()

    with T.guard("good reload after the broken ones"):
        r = O.ctl(srv, "reload")
        T.check("a good reload after the broken ones works", r.rc == 0, r)


def test_cert(srv):
    with T.guard("new certificate"):
        before = O.peer_cert(srv.port)
        T.check("before: the server shows cert.pem",
                before == O.file_der(srv.cert), "")
        T.check("before: CN localhost", O.cert_cn(before) == "localhost",
                O.cert_cn(before))
        s = pop3s(srv, "bob", "bob-new-pw")
        # Replace the files in place, as a certificate renewal does.
        new_cert = os.path.join(srv.tmp, "cert2.pem")
        new_key = os.path.join(srv.tmp, "key2.pem")
        O.make_cert(new_cert, new_key, "pop3d-reloaded.test")
        os.rename(new_key, srv.key)
        os.rename(new_cert, srv.cert)
        T.check("before reload: the server still shows the old cert",
                O.peer_cert(srv.port) == before, "")
        r = O.ctl(srv, "reload")
        T.check("new certificate: pop3ctl reload", r.rc == 0, r)
        after = O.peer_cert(srv.port)
        T.check("after reload: a new connection sees the new CN",
                O.cert_cn(after) == "pop3d-reloaded.test", O.cert_cn(after))
        T.check("after reload: it is the new certificate",
                after == O.file_der(srv.cert), "")
        T.check("after reload: the session from before goes on",
                s.noop().startswith(b"+OK"), "")
        s.quit()
        srv.wait_sessions_done()
        with T.guard("new certificate verifies"):
            p = srv.pop3s("bob", "bob-new-pw")    # checks against cert.pem
            T.check("after reload: a verifying client logs in",
                    p.stat()[0] >= 0, "")
            p.quit()
        srv.wait_sessions_done()


def main():
    with T.Server(users=USERS, control=True, conf_extra=EXTRA) as srv:
        for user in ("alice", "bob"):
            for i, m in enumerate(MSGS):
                srv.deliver(user, "17000000%02d.M%dP1.test" % (i, i), m)
        port2 = test_sighup(srv)
        test_ctl_reload(srv, port2)
        test_broken(srv)
        test_cert(srv)
        T.check("server still running at the end", srv.alive(), "")


T.run(main)
