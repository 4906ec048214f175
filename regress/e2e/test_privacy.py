"""The privacy operational mode: with `cleartext-auth no` (the default) no
USER, PASS or AUTH PLAIN without TLS and none advertised; with
`cleartext-auth yes` clear-text logins work, except for users marked
tls-only in the users file; `implementation no` hides IMPLEMENTATION; a USER
given before STLS does not survive it."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import loginlib as L  # noqa: E402

USERS = [("alice", "alice-pw", "bcrypt"),
         ("bob", "bob-pw", "bcrypt", "tls-only")]

MAIL = {
    "alice": [b"From: a@example.org\nSubject: one\n\n.dot\nalice\n"],
    "bob": [b"Subject: bob\r\n\r\nbob\r\n", b"Subject: bob 2\n\nbob 2\n"],
}


def want_stat(user):
    msgs = MAIL[user]
    return b"+OK %d %d" % (len(msgs), sum(len(T.expected(m)) for m in msgs))


def deliver(srv):
    for user, msgs in MAIL.items():
        for i, m in enumerate(msgs):
            srv.deliver(user, "17000000%02d.M%dP1.test" % (i + 1, i + 1), m)


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "30"] + list(args),
                          capture_output=True, timeout=60)


# ------------------------------------------------ cleartext-auth no

def refused_without_tls(srv, port, what):
    with T.guard("privacy mode, " + what):
        with L.plain_conn(srv, port) as c:
            r, lines = L.capa(c)
            n = L.names(lines)
            T.check("%s: CAPA has no USER" % what, b"USER" not in n, lines)
            T.check("%s: CAPA has no SASL" % what, b"SASL" not in n, lines)
            r, mechs = L.auth_list(c)
            T.check("%s: AUTH alone: +OK and no mechanisms" % what,
                    r.startswith(b"+OK") and mechs == [], (r, mechs))
            r = c.cmd(b"USER alice\r\n")
            T.check("%s: USER: -ERR [AUTH] Login requires TLS (use STLS)." %
                    what, r.startswith(L.NEED_TLS), r)
            r = c.cmd(b"PASS alice-pw\r\n")
            T.check("%s: PASS: -ERR [AUTH] Login requires TLS (use STLS)." %
                    what, r.startswith(L.NEED_TLS), r)
            r = c.cmd(b"AUTH PLAIN " + L.plain("alice", "alice-pw") + b"\r\n")
            T.check("%s: AUTH PLAIN <ir>: -ERR [AUTH] Login requires TLS "
                    "(use STLS)." % what, r.startswith(L.NEED_TLS), r)
            r = c.cmd(b"AUTH PLAIN\r\n")
            T.check("%s: AUTH PLAIN: refused at once, no continuation" %
                    what, r.startswith(L.NEED_TLS), r)
            r = L.stat_line(c)
            T.check("%s: not logged in (STAT -ERR)" % what,
                    r.startswith(b"-ERR"), r)
            r = c.cmd(b"USER bob\r\n")
            T.check("%s: tls-only user: USER refused the same way" % what,
                    r.startswith(L.NEED_TLS), r)
            # The password never went to the master: not a failed login,
            # and the connection is still served.
            T.check("%s: the connection is still served" % what,
                    L.capa(c)[1] is not None, "")
            L.quit(c)


def test_privacy_default(srv):
    refused_without_tls(srv, srv.plain_port, "plain port")
    refused_without_tls(srv, srv.stls_port, "starttls port before STLS")

    with T.guard("privacy mode: pipelined clear-text login"):
        with L.plain_conn(srv, srv.plain_port) as c:
            c.send(b"USER alice\r\nPASS alice-pw\r\nSTAT\r\nQUIT\r\n")
            rs = [c.readline() for _ in range(4)]
            T.check("plain port, pipelined USER/PASS/STAT/QUIT: refused, "
                    "refused, -ERR, +OK",
                    rs[0].startswith(L.NEED_TLS) and
                    rs[1].startswith(L.NEED_TLS) and
                    rs[2].startswith(b"-ERR") and rs[3].startswith(b"+OK"),
                    rs)

    with T.guard("privacy mode: curl"):
        r = curl("pop3://alice:alice-pw@%s:%d/1" % (T.HOST, srv.plain_port))
        T.check("privacy mode: curl pop3:// on the plain port: exit 67",
                r.returncode == 67, "exit %d" % r.returncode)

    with T.guard("privacy mode: poplib without TLS"):
        p = T.poplib.POP3(T.HOST, srv.plain_port, timeout=T.TIMEOUT)
        try:
            p.user("alice")
            T.check("poplib without TLS: user() refused", False, "+OK")
        except T.poplib.error_proto as e:
            T.check("poplib without TLS: user() refused with [AUTH]",
                    str(e).find("[AUTH]") >= 0, e)
        p.quit()

    with T.guard("privacy mode: logins over TLS"):
        for user, pw in (("alice", "alice-pw"), ("bob", "bob-pw")):
            with L.stls_conn(srv) as c:
                r = L.login(c, user, pw)
                T.check("privacy mode: %s logs in after STLS" % user,
                        r.startswith(L.LOGGED_IN), r)
                if r.startswith(b"+OK"):
                    T.check("privacy mode: %s's STAT after STLS" % user,
                            L.stat_line(c).startswith(want_stat(user)), "")
                L.quit(c)
            srv.wait_sessions_done()
            with L.tls_conn(srv) as c:
                r = c.cmd(b"AUTH PLAIN " + L.plain(user, pw) + b"\r\n")
                T.check("privacy mode: %s logs in with AUTH PLAIN over "
                        "implicit TLS" % user, r.startswith(L.LOGGED_IN), r)
                L.quit(c)
            srv.wait_sessions_done()

    with T.guard("privacy mode: IMPLEMENTATION shown by default"):
        with L.plain_conn(srv, srv.plain_port) as c:
            r, lines = L.capa(c)
            T.check("default: CAPA has IMPLEMENTATION pop3d",
                    b"IMPLEMENTATION pop3d" in (lines or []), lines)
            L.quit(c)


# ------------------------------------------------ cleartext-auth yes

def test_cleartext_yes(srv):
    with T.guard("cleartext-auth yes: CAPA"):
        with L.plain_conn(srv, srv.plain_port) as c:
            r, lines = L.capa(c)
            T.check("cleartext-auth yes, plain port: CAPA has USER and SASL "
                    "PLAIN, no STLS, no IMPLEMENTATION (implementation no)",
                    lines == L.want_capa(login=True, impl=False), lines)
            r, mechs = L.auth_list(c)
            T.check("cleartext-auth yes, plain port: AUTH lists PLAIN",
                    r.startswith(b"+OK") and mechs == [b"PLAIN"], mechs)
            L.quit(c)
        with L.plain_conn(srv, srv.stls_port) as c:
            r, lines = L.capa(c)
            T.check("cleartext-auth yes, starttls port before TLS: CAPA has "
                    "STLS, USER and SASL PLAIN",
                    lines == L.want_capa(stls=True, login=True, impl=False),
                    lines)
            r, _ = L.stls(c, srv.context())
            r, lines = L.capa(c)
            T.check("cleartext-auth yes, after STLS: CAPA has USER and SASL "
                    "PLAIN, no STLS",
                    lines == L.want_capa(login=True, impl=False), lines)
            L.quit(c)
        with L.tls_conn(srv) as c:
            r, lines = L.capa(c)
            T.check("implementation no: no IMPLEMENTATION over TLS either",
                    lines == L.want_capa(login=True, impl=False), lines)
            L.quit(c)

    with T.guard("cleartext-auth yes: USER/PASS without TLS"):
        with L.plain_conn(srv, srv.plain_port) as c:
            r = L.login(c, "alice", "alice-pw")
            T.check("cleartext-auth yes: USER/PASS without TLS logs in",
                    r.startswith(L.LOGGED_IN), r)
            if r.startswith(b"+OK"):
                T.check("cleartext-auth yes: STAT without TLS",
                        L.stat_line(c).startswith(want_stat("alice")), "")
                r = c.cmd(b"RETR 1\r\n")
                body = c.multiline() if r.startswith(b"+OK") else b""
                T.check("cleartext-auth yes: RETR 1 byte for byte",
                        body == T.wire(MAIL["alice"][0]), body[:80])
                r, lines = L.capa(c)
                n = L.names(lines)
                T.check("cleartext-auth yes, after login: no USER/SASL/STLS",
                        not set(n) & {b"USER", b"SASL", b"STLS"}, lines)
                T.check("implementation no: no IMPLEMENTATION after login "
                        "either", b"IMPLEMENTATION" not in n, lines)
                r = c.cmd(b"STLS\r\n")
                T.check("STLS after a clear-text login: -ERR Already logged "
                        "in.", r.startswith(L.ALREADY), r)
            r = L.quit(c)
            T.check("cleartext-auth yes: QUIT +OK", r.startswith(b"+OK"), r)
    srv.wait_sessions_done()

    with T.guard("cleartext-auth yes: pipelined"):
        # The login process hands the socket over whole: what the client
        # sent behind PASS must reach the mailbox process.
        with L.plain_conn(srv, srv.plain_port) as c:
            c.send(b"CAPA\r\nUSER alice\r\nPASS alice-pw\r\nSTAT\r\n"
                   b"LIST\r\nQUIT\r\n")
            r = c.readline()
            lines = c.multiline().split(b"\r\n")[:-2] \
                if r.startswith(b"+OK") else None
            ru, rp, rs, rl = (c.readline() for _ in range(4))
            body = c.multiline() if rl.startswith(b"+OK") else b""
            rq = c.readline()
            want = b"1 %d\r\n.\r\n" % len(T.expected(MAIL["alice"][0]))
            T.check("pipelined without TLS: CAPA, USER, PASS, STAT, LIST, "
                    "QUIT answered in order",
                    lines == L.want_capa(login=True, impl=False) and
                    ru.startswith(b"+OK") and rp.startswith(L.LOGGED_IN) and
                    rs.startswith(want_stat("alice")) and body == want and
                    rq.startswith(b"+OK"),
                    [r, lines, ru, rp, rs, rl, body, rq])
            T.check("pipelined without TLS: closed after QUIT", c.closed(),
                    "open")
    srv.wait_sessions_done()

    with T.guard("cleartext-auth yes: AUTH PLAIN without TLS"):
        with L.plain_conn(srv, srv.plain_port) as c:
            r = c.cmd(b"AUTH PLAIN\r\n")
            T.check("cleartext-auth yes: AUTH PLAIN continuation without TLS",
                    r == L.CONTINUE, r)
            if r == L.CONTINUE:
                r = c.cmd(L.plain("alice", "alice-pw") + b"\r\n")
                T.check("cleartext-auth yes: AUTH PLAIN without TLS logs in",
                        r.startswith(L.LOGGED_IN), r)
            L.quit(c)
    srv.wait_sessions_done()

    with T.guard("cleartext-auth yes: tls-only user"):
        with L.plain_conn(srv, srv.plain_port) as c:
            r = L.login(c, "bob", "bob-pw")
            T.check("tls-only user, right password, no TLS: -ERR [AUTH] "
                    "This account requires TLS.", r.startswith(L.TLS_ONLY), r)
            r = L.login(c, "bob", "wrong")
            T.check("tls-only user, wrong password, no TLS: -ERR [AUTH] "
                    "Invalid user name or password.",
                    r.startswith(L.BAD_LOGIN), r)
            r = L.stat_line(c)
            T.check("tls-only user without TLS: not logged in",
                    r.startswith(b"-ERR"), r)
            r = c.cmd(b"AUTH PLAIN " + L.plain("bob", "bob-pw") + b"\r\n")
            T.check("tls-only user, AUTH PLAIN, no TLS: -ERR [AUTH] This "
                    "account requires TLS.", r.startswith(L.TLS_ONLY), r)
            r = c.cmd(b"AUTH PLAIN " + L.plain("bob", "wrong") + b"\r\n")
            T.check("tls-only user, AUTH PLAIN, wrong password, no TLS: "
                    "-ERR [AUTH] Invalid user name or password.",
                    r.startswith(L.BAD_LOGIN), r)
        with L.plain_conn(srv, srv.stls_port) as c:
            r = L.login(c, "bob", "bob-pw")
            T.check("tls-only user on the starttls port before STLS: -ERR "
                    "[AUTH] This account requires TLS.",
                    r.startswith(L.TLS_ONLY), r)
            r, _ = L.stls(c, srv.context())
            T.check("then STLS: +OK", r.startswith(L.BEGIN_TLS), r)
            r = L.login(c, "bob", "bob-pw")
            T.check("tls-only user after STLS logs in",
                    r.startswith(L.LOGGED_IN), r)
            if r.startswith(b"+OK"):
                T.check("tls-only user after STLS: STAT",
                        L.stat_line(c).startswith(want_stat("bob")), "")
            L.quit(c)
        srv.wait_sessions_done()
        with L.tls_conn(srv) as c:
            r = c.cmd(b"AUTH PLAIN " + L.plain("bob", "bob-pw") + b"\r\n")
            T.check("tls-only user over implicit TLS: AUTH PLAIN logs in",
                    r.startswith(L.LOGGED_IN), r)
            L.quit(c)
        srv.wait_sessions_done()

    with T.guard("USER before STLS is forgotten"):
        with L.plain_conn(srv, srv.stls_port) as c:
            r = c.cmd(b"USER alice\r\n")
            T.check("cleartext-auth yes: USER before STLS: +OK",
                    r.startswith(b"+OK"), r)
            r, left = L.stls(c, srv.context())
            T.check("STLS after USER: +OK", r.startswith(L.BEGIN_TLS), r)
            r = c.cmd(b"PASS alice-pw\r\n")
            T.check("PASS after STLS without a new USER: -ERR Send USER "
                    "first.", r.startswith(L.USER_FIRST), r)
            r = L.login(c, "alice", "alice-pw")
            T.check("USER/PASS after STLS then logs in",
                    r.startswith(L.LOGGED_IN), r)
            L.quit(c)
    srv.wait_sessions_done()

    with T.guard("cleartext-auth yes: clients"):
        p = T.poplib.POP3(T.HOST, srv.plain_port, timeout=T.TIMEOUT)
        try:
            p.user("alice")
            r = p.pass_("alice-pw")
            T.check("poplib POP3 without TLS (cleartext-auth yes): login",
                    r.startswith(b"+OK"), r)
            _, lines, _ = p.retr(1)
            T.check("poplib POP3 without TLS: retr(1)",
                    T.joined(lines) == T.expected(MAIL["alice"][0]), lines)
            p.quit()
        finally:
            p.close()
        srv.wait_sessions_done()
        r = curl("pop3://alice:alice-pw@%s:%d/1" % (T.HOST, srv.plain_port))
        T.check("curl pop3:// without TLS (cleartext-auth yes): message 1",
                r.returncode == 0 and r.stdout == T.expected(MAIL["alice"][0]),
                "exit %d %r" % (r.returncode, r.stdout[:80]))
        srv.wait_sessions_done()
        r = curl("pop3://bob:bob-pw@%s:%d/1" % (T.HOST, srv.plain_port))
        T.check("curl pop3:// without TLS as the tls-only user: exit 67",
                r.returncode == 67, "exit %d" % r.returncode)
        r = curl("--ssl-reqd", "--cacert", srv.cert,
                 "pop3://bob:bob-pw@%s:%d/1" % (T.HOST, srv.stls_port))
        T.check("curl --ssl-reqd as the tls-only user: message 1",
                r.returncode == 0 and r.stdout == T.expected(MAIL["bob"][0]),
                "exit %d: %s" % (r.returncode, r.stderr[-200:]))
        srv.wait_sessions_done()


def main():
    conf = "failure-delay 0\n"
    with T.Server(users=USERS, starttls=True, plain=True,
                  conf_extra=conf) as srv:
        deliver(srv)
        test_privacy_default(srv)
        T.check("privacy mode: server still running", srv.alive(), "")
        with T.guard("cleartext-auth: configuration"):
            rc, out = L.conf_check(srv, "cleartext-auth maybe\n")
            T.check("cleartext-auth maybe: refused by pop3d -n", rc != 0, out)
            rc, out = L.conf_check(srv, "cleartext-auth yes\n"
                                   "implementation no\n")
            T.check("cleartext-auth yes, implementation no: pop3d -n accepts",
                    rc == 0, out)
    with T.Server(users=USERS, starttls=True, plain=True,
                  conf_extra=conf + "cleartext-auth yes\n"
                  "implementation no\n") as srv:
        deliver(srv)
        test_cleartext_yes(srv)
        T.check("cleartext-auth yes: server still running", srv.alive(), "")


T.run(main)
