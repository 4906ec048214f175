"""AUTHORIZATION state: greeting, CAPA, USER/PASS with each hash kind, bad
credentials, openssl s_client, pipelining, garbage, two users at once."""

import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402

USERS = [("alice", "alice-pw", "bcrypt"),
         ("bob", "bob pw:with colon", "yescrypt"),
         ("carol", "c@rol-Pw", "sha512")]

MAIL = {
    "alice": [b"From: a@example.org\r\nSubject: for alice\r\n\r\nalice 1\r\n",
              b"Subject: second\n\nalice 2\n"],
    "bob": [b"From: b@example.org\nSubject: for bob\n\nbob only\n"],
    "carol": [b"Subject: carol\r\n\r\ncarol\r\n",
              b"Subject: carol 2\r\n\r\nmore\r\n",
              b"Subject: carol 3\r\n\r\nand more\r\n"],
}


def stat_of(user):
    msgs = MAIL[user]
    return len(msgs), sum(len(T.expected(m)) for m in msgs)


def err_text(e):
    """The server reply carried by a poplib.error_proto."""
    a = e.args[0] if e.args else b""
    return a if isinstance(a, bytes) else str(a).encode()


def try_login(p, user, password):
    """USER/PASS on p; return (first -ERR reply or None, last reply)."""
    try:
        r = p.user(user)
    except T.poplib.error_proto as e:
        return err_text(e), err_text(e)
    try:
        r = p.pass_(password)
    except T.poplib.error_proto as e:
        return err_text(e), err_text(e)
    return None, r


def test_greeting_capa(srv):
    with T.guard("greeting"):
        with srv.raw() as c:
            g = c.readline()
            T.check("greeting starts with +OK", g.startswith(b"+OK"), g)
            T.check("greeting ends with CRLF", g.endswith(b"\r\n"), g)
            r = c.cmd(b"CAPA\r\n")
            T.check("CAPA before login: +OK", r.startswith(b"+OK"), r)
            body = c.multiline() if r.startswith(b"+OK") else b""
            caps = [l.split()[0].upper() for l in body.split(b"\r\n")
                    if l and l != b"."]
            for cap in (b"USER", b"RESP-CODES", b"PIPELINING"):
                T.check("CAPA before login lists %s" % cap.decode(),
                        cap in caps, body)
            r = c.cmd(b"QUIT\r\n")
            T.check("QUIT in AUTHORIZATION: +OK", r.startswith(b"+OK"), r)
            T.check("QUIT in AUTHORIZATION closes", c.closed(), "still open")

    with T.guard("poplib capa"):
        p = srv.pop3s()
        caps = p.capa()
        T.check("poplib capa() has USER", "USER" in caps, caps)
        p.quit()


def test_before_login(srv):
    with T.guard("commands before login"):
        with srv.raw() as c:
            c.readline()
            for cmd in (b"STAT", b"LIST", b"RETR 1", b"DELE 1", b"NOOP"):
                r = c.cmd(cmd + b"\r\n")
                T.check("%s before login: -ERR" % cmd.decode(),
                        r.startswith(b"-ERR"), r)
            r = c.cmd(b"PASS alice-pw\r\n")
            T.check("PASS without USER: -ERR", r.startswith(b"-ERR"), r)
            r = c.cmd(b"XYZZY\r\n")
            T.check("unknown command: -ERR", r.startswith(b"-ERR"), r)
            r = c.cmd(b"USER alice\r\n")
            T.check("USER after errors: +OK", r.startswith(b"+OK"), r)
            r = c.cmd(b"PASS alice-pw\r\n")
            T.check("PASS after errors: +OK", r.startswith(b"+OK"), r)
            c.cmd(b"QUIT\r\n")


def test_each_hash(srv):
    # A session's lock lasts until its process exits, just after QUIT.
    srv.wait_sessions_done()
    for name, password, method in USERS:
        with T.guard("login %s (%s)" % (name, method)):
            p = srv.pop3s()
            err, r = try_login(p, name, password)
            T.check("login %s with a %s hash" % (name, method),
                    err is None and r.startswith(b"+OK"), err or r)
            if err is None:
                n, size = p.stat()
                T.check("STAT of %s" % name, (n, size) == stat_of(name),
                        "got %s, want %s" % ((n, size), stat_of(name)))
                r = p.quit()
                T.check("QUIT of %s: +OK" % name, r.startswith(b"+OK"), r)
            else:
                p.close()
        srv.wait_sessions_done()


def test_bad_credentials(srv):
    with T.guard("wrong password"):
        p = srv.pop3s()
        err, r = try_login(p, "alice", "not-the-password")
        T.check("wrong password: -ERR [AUTH]",
                err is not None and err.startswith(b"-ERR [AUTH]"), r)
        err, r = try_login(p, "alice", "alice-pw")
        T.check("right password after a wrong one, same connection",
                err is None and r.startswith(b"+OK"), r)
        if err is None:
            T.check("STAT after a retried login",
                    p.stat() == stat_of("alice"), "")
            p.quit()
        else:
            p.close()
    srv.wait_sessions_done()

    with T.guard("unknown user"):
        p = srv.pop3s()
        err, r = try_login(p, "mallory", "alice-pw")
        T.check("unknown user: -ERR [AUTH]",
                err is not None and err.startswith(b"-ERR [AUTH]"), r)
        err, r = try_login(p, "bob", "bob pw:with colon")
        T.check("login after an unknown user, same connection",
                err is None and r.startswith(b"+OK"), r)
        if err is None:
            p.quit()
        else:
            p.close()
    srv.wait_sessions_done()

    with T.guard("password of another user"):
        p = srv.pop3s()
        err, r = try_login(p, "bob", "alice-pw")
        T.check("another user's password: -ERR [AUTH]",
                err is not None and err.startswith(b"-ERR [AUTH]"), r)
        p.close()

    with T.guard("empty and odd passwords"):
        with srv.raw() as c:
            c.readline()
            c.cmd(b"USER alice\r\n")
            r = c.cmd(b"PASS\r\n")
            T.check("PASS with no argument: -ERR", r.startswith(b"-ERR"), r)
            c.cmd(b"USER alice\r\n")
            r = c.cmd(b"PASS alice-pw \r\n")
            T.check("PASS with a trailing space is another password",
                    r.startswith(b"-ERR"), r)
            c.cmd(b"USER alice\r\n")
            r = c.cmd(b"PASS alice-pw\r\n")
            T.check("then the right one: +OK", r.startswith(b"+OK"), r)
            c.cmd(b"QUIT\r\n")
    srv.wait_sessions_done()


def test_s_client(srv):
    with T.guard("openssl s_client"):
        script = b"USER carol\r\nPASS c@rol-Pw\r\nSTAT\r\nQUIT\r\n"
        r = subprocess.run(
            ["openssl", "s_client", "-quiet", "-connect",
             "%s:%d" % (T.HOST, srv.port)],
            input=script, capture_output=True, timeout=60)
        lines = r.stdout.split(b"\r\n")
        want = [b"+OK", b"+OK", b"+OK", b"+OK %d %d" % stat_of("carol"),
                b"+OK"]
        ok = (len(lines) >= 5 and
              all(l.startswith(w) for l, w in zip(lines, want)))
        T.check("openssl s_client: USER/PASS/STAT/QUIT all +OK", ok,
                "out=%r err=%r" % (r.stdout[:300], r.stderr[-300:]))
    srv.wait_sessions_done()


def test_pipelining(srv):
    with T.guard("pipelining"):
        with srv.raw() as c:
            g = c.readline()
            c.send(b"USER alice\r\nPASS alice-pw\r\nSTAT\r\nLIST\r\nQUIT\r\n")
            r_user = c.readline()
            r_pass = c.readline()
            r_stat = c.readline()
            r_list = c.readline()
            body = c.multiline() if r_list.startswith(b"+OK") else b""
            r_quit = c.readline()
            n, size = stat_of("alice")
            want_list = b"".join(b"%d %d\r\n" % (i + 1, len(T.expected(m)))
                                 for i, m in enumerate(MAIL["alice"]))
            T.check("pipelined: greeting", g.startswith(b"+OK"), g)
            T.check("pipelined: USER +OK", r_user.startswith(b"+OK"), r_user)
            T.check("pipelined: PASS +OK", r_pass.startswith(b"+OK"), r_pass)
            T.check("pipelined: STAT", r_stat.startswith(
                b"+OK %d %d" % (n, size)), r_stat)
            T.check("pipelined: LIST", r_list.startswith(b"+OK") and
                    body == want_list + b".\r\n", r_list + body)
            T.check("pipelined: QUIT +OK", r_quit.startswith(b"+OK"), r_quit)
            T.check("pipelined: closed after QUIT", c.closed(), "open")
    srv.wait_sessions_done()

    with T.guard("pipelined bad login"):
        with srv.raw() as c:
            c.readline()
            c.send(b"USER alice\r\nPASS wrong\r\nUSER alice\r\n"
                   b"PASS alice-pw\r\nNOOP\r\nQUIT\r\n")
            rs = [c.readline() for _ in range(6)]
            ok = (rs[0].startswith(b"+OK") and
                  rs[1].startswith(b"-ERR [AUTH]") and
                  rs[2].startswith(b"+OK") and rs[3].startswith(b"+OK") and
                  rs[4].startswith(b"+OK") and rs[5].startswith(b"+OK"))
            T.check("pipelined: failed then good login", ok, rs)
    srv.wait_sessions_done()


def reply_or_close(c, data):
    """Send data; the reply line, or b"" if the server closes.  A server
    that neither answers nor closes within 10s fails (socket.timeout)."""
    c.sock.settimeout(10)
    try:
        c.send(data)
        return c.readline()
    except (ConnectionError, EOFError, T.ssl.SSLEOFError,
            T.ssl.SSLZeroReturnError):
        return b""


def normal_login_works(srv, what):
    with T.guard("normal client after %s" % what):
        p = srv.pop3s("bob")
        T.check("normal client works after %s" % what,
                p.stat() == stat_of("bob"), "")
        p.quit()
    srv.wait_sessions_done()


def test_garbage(srv):
    rnd = random.Random(110)
    logins = sorted(srv.login_pids())
    with T.guard("garbage over TLS"):
        with srv.raw() as c:
            c.readline()
            junk = bytes(rnd.randrange(256) for _ in range(4096))
            try:
                c.send(junk + b"\r\n")
                c.closed(timeout=2)
            except (OSError, T.ssl.SSLError, EOFError):
                pass
    T.check("server alive after random bytes over TLS", srv.alive(), "")
    normal_login_works(srv, "random bytes over TLS")

    with T.guard("garbage over plain TCP"):
        with srv.raw(tls=False) as c:
            try:
                c.send(bytes(rnd.randrange(256) for _ in range(4096)))
                c.closed(timeout=2)
            except (OSError, EOFError):
                pass
        with srv.raw(tls=False) as c:
            try:
                c.send(b"USER alice\r\nPASS alice-pw\r\n")
                c.closed(timeout=2)
            except (OSError, EOFError):
                pass
    T.check("server alive after non-TLS bytes", srv.alive(), "")
    normal_login_works(srv, "non-TLS bytes")

    with T.guard("long line"):
        with srv.raw() as c:
            c.readline()
            r = reply_or_close(c, b"USER " + b"x" * 10240 + b"\r\n")
            T.check("10 KB line: -ERR or close",
                    r == b"" or r.startswith(b"-ERR"), r[:80])
    T.check("server alive after a 10 KB line", srv.alive(), "")
    normal_login_works(srv, "a 10 KB line")

    with T.guard("long line after login"):
        with srv.raw() as c:
            c.readline()
            c.cmd(b"USER bob\r\n")
            c.cmd(b"PASS bob pw:with colon\r\n")
            r = reply_or_close(c, b"LIST " + b"9" * 10240 + b"\r\n")
            T.check("10 KB line after login: -ERR or close",
                    r == b"" or r.startswith(b"-ERR"), r[:80])
    T.check("server alive after a 10 KB line after login", srv.alive(), "")
    normal_login_works(srv, "a 10 KB line after login")

    with T.guard("NUL in a command"):
        with srv.raw() as c:
            c.readline()
            r = reply_or_close(c, b"US\0ER alice\r\n")
            T.check("NUL in a command: -ERR or close",
                    r == b"" or r.startswith(b"-ERR"), r)
    normal_login_works(srv, "a NUL byte")

    with T.guard("many connections"):
        conns = []
        try:
            for _ in range(20):
                conns.append(srv.raw(tls=False))
        finally:
            for c in conns:
                c.close()
    T.check("server alive after 20 idle connections", srv.alive(), "")
    normal_login_works(srv, "20 idle connections")
    T.check("no login process died of the garbage",
            logins and sorted(srv.login_pids()) == logins,
            "before %s after %s" % (logins, sorted(srv.login_pids())))


def test_two_users(srv):
    with T.guard("two users at once"):
        pa = srv.pop3s("alice")
        pb = srv.pop3s("bob")
        T.check("two sessions: alice sees her mail",
                pa.stat() == stat_of("alice"), "")
        T.check("two sessions: bob sees his mail",
                pb.stat() == stat_of("bob"), "")
        _, la, _ = pa.retr(1)
        _, lb, _ = pb.retr(1)
        T.check("two sessions: alice's message 1",
                T.joined(la) == T.expected(MAIL["alice"][0]), la[:3])
        T.check("two sessions: bob's message 1",
                T.joined(lb) == T.expected(MAIL["bob"][0]), lb[:3])
        try:
            pb.retr(2)
            T.check("two sessions: bob cannot RETR 2 (alice has 2)", False,
                    "+OK")
        except T.poplib.error_proto as e:
            T.check("two sessions: bob cannot RETR 2 (alice has 2)",
                    err_text(e).startswith(b"-ERR"), e)
        pa.quit()
        pb.quit()
    srv.wait_sessions_done()


def main():
    with T.Server(users=USERS) as srv:
        for user, msgs in MAIL.items():
            for i, m in enumerate(msgs):
                srv.deliver(user, "17000000%02d.M%dP1.test" % (i + 1, i + 1),
                            m)
        test_greeting_capa(srv)
        test_before_login(srv)
        test_each_hash(srv)
        test_bad_credentials(srv)
        test_s_client(srv)
        test_pipelining(srv)
        test_two_users(srv)
        test_garbage(srv)
        T.check("server still running at the end", srv.alive(), "")


T.run(main)
