"""STLS (RFC 2595) and CAPA (RFC 2449) with the default configuration:
CAPA before and after STLS and after login, STLS refused where it does not
apply, the STARTTLS command-injection class (anything pipelined after the
STLS line is dropped), pipelining over TLS, and real clients: poplib's
stls(), curl --ssl-reqd, openssl s_client -starttls pop3."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import loginlib as L  # noqa: E402

USERS = [("alice", "alice-pw", "bcrypt"),
         ("bob", "bob-pw", "sha512", "tls-only")]

MAIL = {
    "alice": [b"From: a@example.org\r\nSubject: one\r\n\r\nHello.\r\n",
              b"Subject: two\n\n.\n..\n.x\nend\n"],
    "bob": [b"Subject: bob\n\nbob only\n"],
}


def stat_of(user):
    msgs = MAIL[user]
    return len(msgs), sum(len(T.expected(m)) for m in msgs)


def want_stat(user):
    return b"+OK %d %d" % stat_of(user)


def test_capa_before_tls(srv):
    with T.guard("CAPA on the starttls port before TLS"):
        with L.plain_conn(srv, srv.stls_port) as c:
            T.check("starttls port: greeting", c.greeting.startswith(
                L.GREETING), c.greeting)
            r, lines = L.capa(c)
            T.check("starttls port, no TLS: CAPA +OK",
                    r.startswith(b"+OK Capability list follows."), r)
            n = L.names(lines)
            T.check("starttls port, no TLS: CAPA lists STLS", b"STLS" in n,
                    lines)
            T.check("starttls port, no TLS, cleartext-auth no: CAPA lists "
                    "no USER", b"USER" not in n, lines)
            T.check("starttls port, no TLS, cleartext-auth no: CAPA lists "
                    "no SASL", b"SASL" not in n, lines)
            T.check("starttls port, no TLS: CAPA exactly as specified",
                    lines == L.want_capa(stls=True), "got %r want %r" %
                    (lines, L.want_capa(stls=True)))
            r = c.cmd(b"STLS now\r\n")
            T.check("STLS with an argument: -ERR", r.startswith(b"-ERR"), r)
            r, left = L.stls(c, srv.context())
            T.check("STLS after a refused STLS: +OK Begin TLS negotiation.",
                    r.startswith(L.BEGIN_TLS), r)
            T.check("STLS: nothing after the +OK line before the handshake",
                    left == b"", left)
            L.quit(c)


def test_stls_session(srv):
    with T.guard("STLS session"):
        with L.plain_conn(srv, srv.stls_port) as c:
            r, left = L.stls(c, srv.context())
            T.check("STLS: +OK Begin TLS negotiation.",
                    r == L.BEGIN_TLS + b"\r\n", r)
            if not r.startswith(b"+OK"):
                return
            T.check("STLS: handshake to TLS 1.2 or 1.3",
                    c.sock.version() in ("TLSv1.2", "TLSv1.3"),
                    c.sock.version())
            r, lines = L.capa(c)
            n = L.names(lines)
            T.check("after STLS: CAPA has no STLS", b"STLS" not in n, lines)
            T.check("after STLS: CAPA has USER", b"USER" in n, lines)
            T.check("after STLS: CAPA has SASL PLAIN",
                    L.mechs(lines) == [b"PLAIN"], lines)
            T.check("after STLS: CAPA exactly as specified",
                    lines == L.want_capa(login=True), "got %r want %r" %
                    (lines, L.want_capa(login=True)))
            r = c.cmd(b"STLS\r\n")
            T.check("STLS twice: -ERR Command not permitted when TLS active.",
                    r.startswith(L.TLS_ACTIVE), r)
            r = L.login(c, "alice", "alice-pw")
            T.check("after STLS: USER/PASS logs in", r.startswith(
                L.LOGGED_IN), r)
            if not r.startswith(b"+OK"):
                return
            r, lines = L.capa(c)
            n = L.names(lines)
            T.check("after login: CAPA has no USER, SASL or STLS",
                    r.startswith(b"+OK") and
                    not set(n) & {b"USER", b"SASL", b"STLS"}, lines)
            want = [b"TOP", b"UIDL", b"RESP-CODES", b"PIPELINING",
                    b"IMPLEMENTATION"]
            T.check("after login: CAPA has TOP, UIDL, RESP-CODES, "
                    "PIPELINING, IMPLEMENTATION",
                    all(w in n for w in want), lines)
            r = c.cmd(b"STLS\r\n")
            T.check("STLS after login: -ERR Already logged in.",
                    r.startswith(L.ALREADY), r)
            r = L.stat_line(c)
            T.check("after STLS and login: STAT", r.startswith(
                want_stat("alice")), r)
            r = c.cmd(b"RETR 2\r\n")
            body = c.multiline() if r.startswith(b"+OK") else b""
            T.check("after STLS: RETR 2 byte for byte",
                    body == T.wire(MAIL["alice"][1]), body[:80])
            r = L.quit(c)
            T.check("after STLS: QUIT +OK", r.startswith(b"+OK"), r)
    srv.wait_sessions_done()

    with T.guard("STLS then a tls-only user"):
        with L.stls_conn(srv) as c:
            r = L.login(c, "bob", "bob-pw")
            T.check("tls-only user logs in after STLS",
                    r.startswith(L.LOGGED_IN), r)
            if r.startswith(b"+OK"):
                r = L.stat_line(c)
                T.check("tls-only user after STLS: STAT",
                        r.startswith(want_stat("bob")), r)
            L.quit(c)
    srv.wait_sessions_done()


def test_stls_refused(srv):
    with T.guard("STLS on the implicit TLS port"):
        with L.tls_conn(srv) as c:
            r = c.cmd(b"STLS\r\n")
            T.check("STLS on implicit TLS: -ERR Command not permitted when "
                    "TLS active.", r.startswith(L.TLS_ACTIVE), r)
            r, lines = L.capa(c)
            T.check("implicit TLS: CAPA exactly as specified (no STLS)",
                    lines == L.want_capa(login=True), lines)
            r = L.login(c, "alice", "alice-pw")
            T.check("implicit TLS: login after a refused STLS",
                    r.startswith(L.LOGGED_IN), r)
            L.quit(c)
    srv.wait_sessions_done()

    with T.guard("STLS on the plain port"):
        with L.plain_conn(srv, srv.plain_port) as c:
            T.check("plain port: greeting", c.greeting.startswith(
                L.GREETING), c.greeting)
            r, lines = L.capa(c)
            T.check("plain port, cleartext-auth no: CAPA has no STLS, USER "
                    "or SASL", lines == L.want_capa(), lines)
            r = c.cmd(b"STLS\r\n")
            T.check("STLS on a port without starttls: -ERR STLS not "
                    "available.", r.startswith(L.NO_STLS), r)
            T.check("plain port: connection still open after the refused "
                    "STLS", c.cmd(b"CAPA\r\n").startswith(b"+OK"), "")
            c.multiline()
            L.quit(c)


def injected(srv, what, tail, after):
    """Send STLS and tail in one write; after the handshake nothing may be
    pending.  after(c) then checks the state on the TLS connection."""
    with T.guard("injection: " + what):
        with L.plain_conn(srv, srv.stls_port) as c:
            c.send(b"STLS\r\n" + tail)
            r = c.readline()
            T.check("injection (%s): STLS +OK" % what,
                    r.startswith(L.BEGIN_TLS), r)
            if not r.startswith(b"+OK"):
                return
            left = c.starttls(srv.context())
            T.check("injection (%s): no plaintext reply to the injected "
                    "commands" % what, left == b"", left)
            extra = L.pending(c, 0.5)
            T.check("injection (%s): no reply to the injected commands "
                    "after the handshake" % what, extra == b"", extra[:200])
            after(c)
            L.quit(c)
    srv.wait_sessions_done()


def test_injection(srv):
    def capa_once(what):
        def after(c):
            r, lines = L.capa(c)
            T.check("injection (%s): CAPA after TLS answered once, with "
                    "the TLS capabilities" % what,
                    lines == L.want_capa(login=True), lines)
            extra = L.pending(c, 0.3)
            T.check("injection (%s): no stray reply after the CAPA" % what,
                    extra == b"", extra[:200])
        return after

    injected(srv, "CAPA", b"CAPA\r\n", capa_once("CAPA"))

    def user_forgotten(c):
        r = c.cmd(b"PASS alice-pw\r\n")
        T.check("injection (USER): PASS after TLS: -ERR Send USER first.",
                r.startswith(L.USER_FIRST), r)
    injected(srv, "USER", b"USER alice\r\n", user_forgotten)

    def not_logged_in(c):
        r = L.stat_line(c)
        T.check("injection (USER/PASS): not logged in after TLS (STAT "
                "-ERR)", r.startswith(b"-ERR"), r)
        r = L.login(c, "alice", "alice-pw")
        T.check("injection (USER/PASS): a real login after TLS works",
                r.startswith(L.LOGGED_IN), r)
    injected(srv, "USER/PASS", b"USER alice\r\nPASS alice-pw\r\nSTAT\r\n",
             not_logged_in)

    def partial(c):
        # Had the server kept "USER al", this would complete it.
        r = c.cmd(b"ice\r\n")
        T.check("injection (half a line): the rest of the line is not "
                "joined to it", r.startswith(b"-ERR"), r)
        r = c.cmd(b"PASS alice-pw\r\n")
        T.check("injection (half a line): PASS: -ERR Send USER first.",
                r.startswith(L.USER_FIRST), r)
    injected(srv, "half a line", b"USER al", partial)

    injected(srv, "a hundred NOOPs", b"NOOP\r\n" * 100,
             capa_once("a hundred NOOPs"))

    def auth_dropped(c):
        r = L.stat_line(c)
        T.check("injection (AUTH PLAIN): not logged in after TLS",
                r.startswith(b"-ERR"), r)
    injected(srv, "AUTH PLAIN", b"AUTH PLAIN " +
             L.plain("alice", "alice-pw") + b"\r\nSTAT\r\n", auth_dropped)


def test_pipelining(srv):
    def pipeline(c, what):
        c.send(b"CAPA\r\nUSER alice\r\nPASS alice-pw\r\nSTAT\r\nQUIT\r\n")
        r = c.readline()
        lines = c.multiline().split(b"\r\n")[:-2] \
            if r.startswith(b"+OK") else None
        ru = c.readline()
        rp = c.readline()
        rs = c.readline()
        rq = c.readline()
        T.check("pipelined over %s: CAPA" % what,
                r.startswith(b"+OK") and lines == L.want_capa(login=True),
                r + b" %r" % lines)
        T.check("pipelined over %s: USER +OK" % what, ru.startswith(b"+OK"),
                ru)
        T.check("pipelined over %s: PASS +OK Logged in." % what,
                rp.startswith(L.LOGGED_IN), rp)
        T.check("pipelined over %s: STAT" % what,
                rs.startswith(want_stat("alice")), rs)
        T.check("pipelined over %s: QUIT +OK" % what, rq.startswith(b"+OK"),
                rq)
        T.check("pipelined over %s: closed after QUIT" % what, c.closed(),
                "open")

    with T.guard("pipelining over implicit TLS"):
        with L.tls_conn(srv) as c:
            pipeline(c, "implicit TLS")
    srv.wait_sessions_done()
    with T.guard("pipelining after STLS"):
        with L.stls_conn(srv) as c:
            pipeline(c, "STLS")
    srv.wait_sessions_done()


def test_poplib(srv):
    with T.guard("poplib stls()"):
        p = T.poplib.POP3(T.HOST, srv.stls_port, timeout=T.TIMEOUT)
        try:
            caps = p.capa()
            T.check("poplib: capa() before TLS has STLS", "STLS" in caps,
                    caps)
            r = p.stls(context=srv.context())
            T.check("poplib: stls() +OK", r.startswith(b"+OK"), r)
            caps = p.capa()
            T.check("poplib: capa() after stls() has USER and SASL PLAIN, "
                    "no STLS", "USER" in caps and "STLS" not in caps and
                    caps.get("SASL") == ["PLAIN"], caps)
            p.user("alice")
            r = p.pass_("alice-pw")
            T.check("poplib: login after stls()", r.startswith(b"+OK"), r)
            T.check("poplib: stat() after stls()",
                    p.stat() == stat_of("alice"), "")
            _, lines, _ = p.retr(1)
            T.check("poplib: retr(1) after stls()",
                    T.joined(lines) == T.expected(MAIL["alice"][0]), lines)
            p.quit()
        finally:
            p.close()
    srv.wait_sessions_done()

    with T.guard("poplib POP3_SSL"):
        p = srv.pop3s()
        caps = p.capa()
        T.check("poplib POP3_SSL: capa() has USER, SASL PLAIN, no STLS",
                "USER" in caps and "STLS" not in caps and
                caps.get("SASL") == ["PLAIN"], caps)
        p.user("bob")
        r = p.pass_("bob-pw")
        T.check("poplib POP3_SSL: tls-only user logs in", r.startswith(
            b"+OK"), r)
        T.check("poplib POP3_SSL: stat()", p.stat() == stat_of("bob"), "")
        p.quit()
    srv.wait_sessions_done()


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "30"] + list(args),
                          capture_output=True, timeout=60)


def test_curl(srv):
    with T.guard("curl --ssl-reqd"):
        for i, m in enumerate(MAIL["alice"]):
            r = curl("--ssl-reqd", "--cacert", srv.cert,
                     "pop3://alice:alice-pw@%s:%d/%d" %
                     (T.HOST, srv.stls_port, i + 1))
            T.check("curl --ssl-reqd on the starttls port: /%d exit 0" %
                    (i + 1), r.returncode == 0,
                    "exit %d: %s" % (r.returncode, r.stderr[-200:]))
            T.check("curl --ssl-reqd: /%d byte for byte" % (i + 1),
                    r.stdout == T.expected(m), "got %r want %r" %
                    (r.stdout[:80], T.expected(m)[:80]))
            srv.wait_sessions_done()
        r = curl("--ssl-reqd", "--cacert", srv.cert, "--login-options",
                 "AUTH=PLAIN", "pop3://alice:alice-pw@%s:%d/1" %
                 (T.HOST, srv.stls_port))
        T.check("curl --ssl-reqd --login-options AUTH=PLAIN: message 1",
                r.returncode == 0 and r.stdout == T.expected(MAIL["alice"][0]),
                "exit %d: %s" % (r.returncode, r.stderr[-200:]))
        srv.wait_sessions_done()
        r = curl("--ssl-reqd", "--cacert", srv.cert,
                 "pop3://alice:wrong@%s:%d/1" % (T.HOST, srv.stls_port))
        T.check("curl --ssl-reqd, wrong password: exit 67",
                r.returncode == 67, "exit %d" % r.returncode)

    with T.guard("curl without TLS"):
        r = curl("-k", "pop3://alice:alice-pw@%s:%d/1" %
                 (T.HOST, srv.plain_port))
        T.check("curl pop3:// on the plain port, cleartext-auth no: exit 67 "
                "(login denied)", r.returncode == 67,
                "exit %d: %r" % (r.returncode, r.stdout[:80]))
        T.check("curl pop3:// on the plain port: no message",
                MAIL["alice"][0][:20] not in r.stdout, r.stdout[:80])
        r = curl("-k", "pop3://alice:alice-pw@%s:%d/1" %
                 (T.HOST, srv.stls_port))
        T.check("curl pop3:// without --ssl on the starttls port: exit 67",
                r.returncode == 67, "exit %d" % r.returncode)
        r = curl("--ssl-reqd", "-k", "pop3://alice:alice-pw@%s:%d/1" %
                 (T.HOST, srv.plain_port))
        T.check("curl --ssl-reqd on the plain port fails (no STLS)",
                r.returncode != 0 and r.stdout == b"",
                "exit %d" % r.returncode)
    srv.wait_sessions_done()


def test_s_client(srv):
    with T.guard("openssl s_client -starttls pop3"):
        script = b"USER alice\r\nPASS alice-pw\r\nSTAT\r\nQUIT\r\n"
        r = subprocess.run(
            ["openssl", "s_client", "-quiet", "-starttls", "pop3",
             "-CAfile", srv.cert, "-verify_return_error",
             "-connect", "%s:%d" % (T.HOST, srv.stls_port)],
            input=script, capture_output=True, timeout=60)
        replies = [l for l in r.stdout.split(b"\r\n")
                   if l.startswith(b"+OK") or l.startswith(b"-ERR")]
        want = [b"+OK", L.LOGGED_IN, want_stat("alice"), b"+OK"]
        ok = len(replies) == 4 and all(l.startswith(w)
                                       for l, w in zip(replies, want))
        T.check("openssl s_client -starttls pop3: USER/PASS/STAT/QUIT", ok,
                "exit %d out=%r err=%r" % (r.returncode, r.stdout[:300],
                                           r.stderr[-300:]))
    srv.wait_sessions_done()


def main():
    with T.Server(users=USERS, starttls=True, plain=True) as srv:
        for user, msgs in MAIL.items():
            for i, m in enumerate(msgs):
                srv.deliver(user, "17000000%02d.M%dP1.test" % (i + 1, i + 1),
                            m)
        logins = sorted(srv.login_pids())
        test_capa_before_tls(srv)
        test_stls_session(srv)
        test_stls_refused(srv)
        test_injection(srv)
        test_pipelining(srv)
        test_poplib(srv)
        test_curl(srv)
        test_s_client(srv)
        T.check("test_stls: server still running", srv.alive(), "")
        T.check("test_stls: no login process died",
                logins and sorted(srv.login_pids()) == logins,
                "before %s after %s" % (logins, sorted(srv.login_pids())))


T.run(main)
