"""Abuse limits: the cap on failed logins per connection, the failure delay
that grows per connection and per client address (and never delays a good
login), the same time for an unknown user as for a wrong password, the
line-length limit, NULs in commands, garbage, hundreds of failed logins
followed by a good one, the login timeout, and the timeout settings."""

import concurrent.futures
import os
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import loginlib as L  # noqa: E402

USERS = [("alice", "alice-pw", "bcrypt"),
         ("bob", "bob-pw", "bcrypt")]

MAIL = {
    "alice": [b"Subject: a\n\nalice\n"],
    "bob": [b"Subject: b\n\nbob\n", b"Subject: b2\n\nbob 2\n"],
}


def stat_of(user):
    msgs = MAIL[user]
    return len(msgs), sum(len(T.expected(m)) for m in msgs)


def want_stat(user):
    return b"+OK %d %d" % stat_of(user)


def deliver(srv):
    for user, msgs in MAIL.items():
        for i, m in enumerate(msgs):
            srv.deliver(user, "17000000%02d.M%dP1.test" % (i + 1, i + 1), m)


def pool(fn, args, workers=10):
    """fn over args in parallel threads: [(result or None, exception or
    None)] in order.  Each call is bounded by its sockets' timeouts."""
    out = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        futs = [ex.submit(fn, a) for a in args]
        for f in futs:
            try:
                out.append((f.result(timeout=120), None))
            except Exception as e:          # noqa: BLE001 - reported
                out.append((None, e))
    return out


# ------------------------------------------------ failure-delay 0

def test_max_failures(srv):
    with T.guard("max-auth-failures, USER/PASS"):
        with L.tls_conn(srv) as c:
            r1 = L.login(c, "alice", "wrong")
            r2 = L.login(c, "nobody", "alice-pw")
            r3 = L.login(c, "alice", "wrong again")
            T.check("failures 1 and 2: -ERR [AUTH] Invalid user name or "
                    "password.", r1.startswith(L.BAD_LOGIN) and
                    r2.startswith(L.BAD_LOGIN), (r1, r2))
            T.check("failure 3 of max-auth-failures 3: -ERR [AUTH] Too many "
                    "failed logins; closing.", r3.startswith(L.TOO_MANY), r3)
            T.check("after the last allowed failure the server closes",
                    c.closed(), "still open")

    with T.guard("max-auth-failures, AUTH PLAIN"):
        with L.stls_conn(srv) as c:
            r1 = L.login(c, "alice", "wrong")
            r2 = c.cmd(b"AUTH PLAIN " + L.plain("alice", "x") + b"\r\n")
            r3 = c.cmd(b"AUTH PLAIN\r\n")
            if r3 == L.CONTINUE:
                r3 = c.cmd(L.plain("bob", "alice-pw") + b"\r\n")
            T.check("USER/PASS, AUTH PLAIN and AUTH PLAIN continuation "
                    "failures count together",
                    r1.startswith(L.BAD_LOGIN) and
                    r2.startswith(L.BAD_LOGIN) and r3.startswith(L.TOO_MANY),
                    (r1, r2, r3))
            T.check("after STLS too, the server closes after the third "
                    "failure", c.closed(), "still open")

    with T.guard("good login after two failures"):
        with L.tls_conn(srv) as c:
            L.login(c, "alice", "wrong")
            L.login(c, "alice", "wrong")
            r = L.login(c, "alice", "alice-pw")
            T.check("good login after max-auth-failures - 1 failures",
                    r.startswith(L.LOGGED_IN), r)
            if r.startswith(b"+OK"):
                T.check("then STAT", L.stat_line(c).startswith(
                    want_stat("alice")), "")
            L.quit(c)
    srv.wait_sessions_done()


def test_nul_and_lines(srv):
    with T.guard("NUL bytes"):
        with L.tls_conn(srv) as c:
            for what, line in (("USER a\\0b", b"USER a\0b\r\n"),
                               ("USER alice\\0", b"USER alice\0\r\n"),
                               ("US\\0ER", b"US\0ER alice\r\n"),
                               ("a lone NUL", b"\0\r\n"),
                               ("CAPA\\0", b"CAPA\0\r\n")):
                r = L.reply_or_close(c, line)
                T.check("%s: -ERR Invalid characters in command." % what,
                        r.startswith(L.BAD_CHARS), r)
            r = c.cmd(b"USER alice\r\n")
            r = L.reply_or_close(c, b"PASS alice\0-pw\r\n")
            T.check("PASS with a NUL: -ERR Invalid characters in command.",
                    r.startswith(L.BAD_CHARS), r)
            r = L.login(c, "alice", "alice-pw")
            T.check("after the NULs the same connection logs in",
                    r.startswith(L.LOGGED_IN), r)
            L.quit(c)
    srv.wait_sessions_done()

    with T.guard("line lengths"):
        with L.tls_conn(srv) as c:
            r = L.reply_or_close(c, b"USER " + b"u" * 250 + b"\r\n")
            T.check("a 255-octet command line is served (USER +OK)",
                    r.startswith(b"+OK"), r)
            r = L.reply_or_close(c, b"USER " + b"u" * 251 + b"\r\n")
            T.check("a 256-octet command line: -ERR Line too long.",
                    r.startswith(L.TOO_LONG), r)
            r = L.reply_or_close(c, b"CAPA " + b"x" * 10000 + b"\r\n")
            T.check("a 10 KB line: -ERR Line too long.",
                    r.startswith(L.TOO_LONG), r)
            r, lines = L.capa(c)
            T.check("one reply for the 10 KB line: the next is CAPA's",
                    r.startswith(b"+OK") and lines is not None, r)
            # 100 KB without a line end, in pieces, then the end.
            for _ in range(10):
                c.send(b"y" * 10000)
            r = L.reply_or_close(c, b"\r\n")
            T.check("a 100 KB line sent in pieces: -ERR Line too long.",
                    r.startswith(L.TOO_LONG), r)
            r, lines = L.capa(c)
            T.check("one reply for the 100 KB line: the next is CAPA's",
                    r.startswith(b"+OK") and lines is not None, r)
            r = L.reply_or_close(c, b"\r\n")
            T.check("an empty line: -ERR", r.startswith(b"-ERR"), r)
            r = L.login(c, "alice", "alice-pw")
            T.check("after the long lines the same connection logs in",
                    r.startswith(L.LOGGED_IN), r)
            L.quit(c)
    srv.wait_sessions_done()

    rnd = random.Random(2595)
    with T.guard("garbage"):
        for port, tls in ((srv.port, True), (srv.port, False),
                          (srv.stls_port, False)):
            try:
                with srv.raw(tls=tls, port=port) as c:
                    c.sock.settimeout(5)
                    if tls or port == srv.stls_port:
                        c.readline()
                    c.send(bytes(rnd.randrange(256) for _ in range(8192)) +
                           b"\r\n")
                    c.closed(timeout=1)
            except (OSError, EOFError, ValueError, T.ssl.SSLError):
                pass
        # STLS, then garbage instead of a ClientHello.
        with srv.raw(tls=False, port=srv.stls_port) as c:
            c.readline()
            c.send(b"STLS\r\n")
            c.readline()
            c.send(bytes(rnd.randrange(256) for _ in range(4096)))
            T.check("garbage instead of a TLS handshake after STLS: closed",
                    c.closed(timeout=5), "still open")
    T.check("server alive after garbage", srv.alive(), "")
    L.normal_login_works(srv, "bob", "garbage", stat_of("bob"))


def hammer(args):
    """One connection with max-auth-failures failed logins; returns the
    replies and whether the server closed."""
    srv, i = args
    if i % 2:
        c = L.stls_conn(srv)
    else:
        c = L.tls_conn(srv)
    with c:
        kind = i % 3
        rs = []
        for k in range(3):
            if kind == 0:
                rs.append(L.login(c, "alice", "wrong-%d-%d" % (i, k)))
            elif kind == 1:
                rs.append(L.login(c, "ghost%d" % i, "alice-pw"))
            else:
                rs.append(c.cmd(b"AUTH PLAIN " +
                                L.plain("bob", "nope%d" % k) + b"\r\n"))
        return rs, c.closed(timeout=5)


def test_hundreds(srv):
    logins = sorted(srv.login_pids())
    master = srv.pid
    with T.guard("hundreds of failed logins"):
        t0 = time.monotonic()
        results = pool(hammer, [(srv, i) for i in range(100)], workers=10)
        took = time.monotonic() - t0
        errors = [e for _, e in results if e is not None]
        good = [r for r, e in results
                if e is None and r[1] and
                r[0][0].startswith(L.BAD_LOGIN) and
                r[0][1].startswith(L.BAD_LOGIN) and
                r[0][2].startswith(L.TOO_MANY)]
        bad = [r for r, e in results if e is None and r not in good]
        T.note("300 failed logins over 100 connections took %.1fs" % took)
        T.check("300 failed logins over 100 connections: every connection "
                "got 2 x Invalid, then Too many, then was closed",
                len(good) == 100, "%d good, errors %s, others %s" %
                (len(good), errors[:3], bad[:3]))
        t0 = time.monotonic()
        with L.tls_conn(srv) as c:
            r = L.login(c, "alice", "alice-pw")
            took = time.monotonic() - t0
            T.check("after 300 failures a good login on a fresh connection "
                    "succeeds", r.startswith(L.LOGGED_IN), r)
            T.check("... promptly (%.2fs < 2s)" % took, took < 2, took)
            if r.startswith(b"+OK"):
                T.check("... and sees the mailbox", L.stat_line(c)
                        .startswith(want_stat("alice")), "")
            L.quit(c)
        srv.wait_sessions_done()
    T.check("after the failed logins: master still running, same PID",
            srv.alive() and srv.pid == master, "")
    T.check("after the failed logins: the same login processes",
            logins and sorted(srv.login_pids()) == logins,
            "before %s after %s" % (logins, sorted(srv.login_pids())))


def test_timing(srv):
    """Unknown user and wrong password cost the same (bcrypt cost 8,
    failure-delay 0): medians over several tries, interleaved."""
    with T.guard("user enumeration by timing"):
        wrong, unknown = [], []
        for i in range(12):
            with L.tls_conn(srv) as c:
                order = [("alice", "wrong%d" % i, wrong),
                         ("nouser%d" % i, "alice-pw", unknown)]
                if i % 2:
                    order.reverse()
                for user, pw, acc in order:
                    ru = c.cmd(("USER %s\r\n" % user).encode())
                    if not ru.startswith(b"+OK"):
                        raise RuntimeError("USER %s: %r" % (user, ru))
                    r, dt = L.timed(c, ("PASS %s\r\n" % pw).encode())
                    if not r.startswith(L.BAD_LOGIN):
                        raise RuntimeError("PASS: %r" % r)
                    acc.append(dt)
        mw, mu = statistics.median(wrong), statistics.median(unknown)
        T.note("median failure reply: wrong password %.1f ms, unknown user "
               "%.1f ms" % (mw * 1000, mu * 1000))
        T.check("unknown user and wrong password take the same time "
                "(medians %.1f and %.1f ms, difference < 30%%)" %
                (mw * 1000, mu * 1000), abs(mw - mu) < 0.3 * mw,
                "wrong %s unknown %s" % (["%.3f" % x for x in wrong],
                                         ["%.3f" % x for x in unknown]))

    with T.guard("USER reply does not tell"):
        with L.tls_conn(srv) as c:
            r1 = c.cmd(b"USER alice\r\n")
            r2 = c.cmd(b"USER nosuchuser\r\n")
            T.check("USER known and USER unknown get the same reply",
                    r1 == r2 and r1.startswith(b"+OK"), (r1, r2))


# ------------------------------------------------ failure-delay 1s

def failing(c, user, pw):
    """USER/PASS with a wrong password: (reply, seconds from PASS to the
    reply)."""
    r = c.cmd(("USER %s\r\n" % user).encode())
    if not r.startswith(b"+OK"):
        return r, 0.0
    return L.timed(c, ("PASS %s\r\n" % pw).encode())


def test_delays(srv):
    """failure-delay 1s, max-auth-failures 3, one login process: the k-th
    failure on a connection waits 2^(k-1) s plus 1s a full ten recent
    failures from the address; good logins never wait."""
    res = {}

    def conn_a():
        with L.tls_conn(srv) as c:
            res["a"] = [failing(c, "alice", "bad%d" % k) for k in range(3)]
            res["a_closed"] = c.closed(timeout=5)

    def conn_d():
        # One failure, then the right password: not delayed.
        with L.tls_conn(srv) as c:
            res["d_fail"] = failing(c, "bob", "bad")
            c.cmd(b"USER bob\r\n")
            res["d_good"] = L.timed(c, b"PASS bob-pw\r\n")
            L.quit(c)

    with T.guard("failure delay per connection"):
        ta = threading.Thread(target=conn_a, daemon=True)
        td = threading.Thread(target=conn_d, daemon=True)
        ta.start()
        time.sleep(0.3)
        td.start()
        time.sleep(0.3)
        # While the others wait out their delays: a good login is prompt.
        with L.tls_conn(srv) as c:
            c.cmd(b"USER alice\r\n")
            r, dt = L.timed(c, b"PASS alice-pw\r\n")
            T.check("a good login while other connections wait out failure "
                    "delays: prompt (%.2fs)" % dt,
                    r.startswith(L.LOGGED_IN) and dt < 0.8, (r, dt))
            L.quit(c)
        ta.join(timeout=30)
        td.join(timeout=30)
        a = res.get("a")
        T.check("connection A finished", a is not None and not ta.is_alive(),
                res)
        if a:
            (r1, d1), (r2, d2), (r3, d3) = a
            T.note("failure delays on one connection: %.2f %.2f %.2f s" %
                   (d1, d2, d3))
            T.check("1st failure: delayed about 1s (%.2fs)" % d1,
                    r1.startswith(L.BAD_LOGIN) and 0.9 <= d1 <= 1.9, (r1, d1))
            T.check("2nd failure: delayed about 2s (%.2fs)" % d2,
                    r2.startswith(L.BAD_LOGIN) and 1.9 <= d2 <= 3.0, (r2, d2))
            T.check("3rd failure: delayed about 4s (%.2fs), Too many" % d3,
                    r3.startswith(L.TOO_MANY) and 3.9 <= d3 <= 5.2, (r3, d3))
            T.check("3rd failure: closed", res.get("a_closed"), "open")
        if "d_good" in res:
            (rf, df), (rg, dg) = res["d_fail"], res["d_good"]
            T.check("a failure then the right password: the good login is "
                    "not delayed (%.2fs)" % dg,
                    rf.startswith(L.BAD_LOGIN) and df >= 0.9 and
                    rg.startswith(L.LOGGED_IN) and dg < 0.8,
                    (rf, df, rg, dg))
    srv.wait_sessions_done()

    # So far 4 failures from 127.0.0.1; 8 more, one a connection.
    def one(i):
        with L.tls_conn(srv) as c:
            if i % 2:
                return failing(c, "ghost%d" % i, "alice-pw")
            return failing(c, "alice", "bad%d" % i)

    with T.guard("failure delay per address"):
        results = pool(one, range(8), workers=8)
        errs = [e for _, e in results if e is not None]
        T.check("8 parallel failures from the address", not errs, errs[:3])
        delays = [r[1] for r, e in results if e is None]
        T.check("unknown users and wrong passwords are both delayed "
                "(all >= 0.9s: %s)" % ["%.2f" % d for d in delays],
                len(delays) == 8 and min(delays) >= 0.9 and
                max(delays) <= 3.2 and
                all(r[0].startswith(L.BAD_LOGIN) for r, _ in results),
                results)
        # Now 12 recent failures from the address: a first failure on a
        # fresh connection waits 1s + 1s.
        with L.tls_conn(srv) as c:
            r, d = failing(c, "alice", "bad-again")
            T.check("first failure on a new connection after 12 from the "
                    "address: about 2s (%.2fs)" % d,
                    r.startswith(L.BAD_LOGIN) and 1.8 <= d <= 3.2, (r, d))
            c.cmd(b"USER alice\r\n")
            r, d = L.timed(c, b"PASS alice-pw\r\n")
            T.check("and the right password right after: prompt (%.2fs)" % d,
                    r.startswith(L.LOGGED_IN) and d < 0.8, (r, d))
            L.quit(c)
    srv.wait_sessions_done()


# ------------------------------------------------ login-timeout 5s

def watch_timeout(args):
    """Open a connection of some kind and wait for the server to end it:
    (seconds to the close, the last line read, error)."""
    srv, kind = args
    t0 = time.monotonic()
    last = b""
    try:
        if kind == "tcp-no-handshake":
            c = srv.raw(tls=False)
        elif kind == "stls-idle":
            c = L.plain_conn(srv, srv.stls_port)
        elif kind == "after-stls":
            c = L.stls_conn(srv)
        else:
            c = L.tls_conn(srv)
        with c:
            c.sock.settimeout(15)
            if kind == "user-then-idle":
                c.cmd(b"USER alice\r\n")
            if kind == "busy":
                # A command a second: activity does not extend the time.
                end = time.monotonic() + 14
                while time.monotonic() < end:
                    r = L.reply_or_close(c, b"CAPA\r\n")
                    if not r.startswith(b"+OK"):
                        last = r
                        break
                    c.multiline()
                    time.sleep(1)
                if last:
                    # Drain: wait for the close.
                    c.closed(timeout=10)
                    return time.monotonic() - t0, last, None
            if kind == "tcp-no-handshake":
                ok = c.closed(timeout=15)
                return (time.monotonic() - t0 if ok else None), b"", None
            while True:
                try:
                    line = c.readline()
                except (EOFError, OSError, T.ssl.SSLError):
                    return time.monotonic() - t0, last, None
                last = line
                if time.monotonic() - t0 > 15:
                    return None, last, None
    except Exception as e:                  # noqa: BLE001
        return None, last, e


def logged_in_idle(srv):
    """Log in, stay idle beyond the login timeout, then STAT."""
    with L.tls_conn(srv) as c:
        r = L.login(c, "alice", "alice-pw")
        if not r.startswith(b"+OK"):
            return r
        time.sleep(7)
        r = L.stat_line(c)
        L.quit(c)
        return r


def start_timeouts(srv):
    kinds = ["idle-tls", "busy", "stls-idle", "after-stls", "user-then-idle",
             "tcp-no-handshake"]
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=len(kinds) + 1)
    futs = {k: ex.submit(watch_timeout, (srv, k)) for k in kinds}
    futs["logged-in"] = ex.submit(logged_in_idle, srv)
    return ex, futs


def start_cap(srv):
    """failure-delay 20s: the first failure would wait 20s; the cap makes
    it 15s.  Runs in a thread: (reply, seconds)."""
    def run():
        with L.tls_conn(srv) as c:
            c.sock.settimeout(30)
            return failing(c, "alice", "wrong")
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    return ex, ex.submit(run)


def check_cap(srv, ex, fut):
    with T.guard("failure delay cap"):
        r, d = fut.result(timeout=60)
        T.check("failure-delay 20s: the delay is capped at 15s (%.1fs)" % d,
                r.startswith(L.BAD_LOGIN) and 14.5 <= d <= 16.5, (r, d))
        ex.shutdown(wait=True)
        with L.tls_conn(srv) as c:
            c.cmd(b"USER bob\r\n")
            r, d = L.timed(c, b"PASS bob-pw\r\n")
            T.check("failure-delay 20s: a good login is prompt (%.2fs)" % d,
                    r.startswith(L.LOGGED_IN) and d < 0.8, (r, d))
            L.quit(c)
    srv.wait_sessions_done()


def check_timeouts(srv, ex, futs):
    with T.guard("login-timeout"):
        for kind, f in futs.items():
            try:
                res = f.result(timeout=40)
            except Exception as e:          # noqa: BLE001
                T.check("login-timeout (%s)" % kind, False, e)
                continue
            if kind == "logged-in":
                T.check("login-timeout 5s does not end a logged-in session "
                        "(STAT after 7s idle)",
                        res.startswith(want_stat("alice")), res)
                continue
            took, last, err = res
            T.check("login-timeout 5s (%s): closed after 5s (%s)" %
                    (kind, "%.1fs" % took if took else "not closed"),
                    err is None and took is not None and 4.5 <= took <= 9,
                    (took, last, err))
            if kind == "busy" and last == b"":
                # Closed while our CAPA was on its way: nothing to read.
                continue
            if kind != "tcp-no-handshake":
                T.check("login-timeout (%s): -ERR Timeout; closing." % kind,
                        last.startswith(b"-ERR") and
                        b"timeout; closing." in last.lower(), last)
        ex.shutdown(wait=True)
    srv.wait_sessions_done()


def test_config(srv):
    with T.guard("timeout settings"):
        for line, ok in (("timeout 15m", True), ("timeout 600", True),
                         ("timeout 5m", False), ("timeout 599", False),
                         ("login-timeout 5s", True),
                         ("login-timeout 10m", True),
                         ("login-timeout 4s", False),
                         ("login-timeout 11m", False),
                         ("max-auth-failures 1", True),
                         ("max-auth-failures 100", True),
                         ("max-auth-failures 0", False),
                         ("max-auth-failures 101", False),
                         ("failure-delay 0", True),
                         ("failure-delay 1s", True),
                         ("failure-delay 2s", True),
                         ("failure-delay soon", False)):
            rc, out = L.conf_check(srv, line)
            T.check("pop3d -n: '%s' %s" % (line, "accepted" if ok else
                                            "refused"),
                    (rc == 0) == ok, "exit %d: %s" % (rc, out[-200:]))


def main():
    with T.Server(users=USERS, starttls=True,
                  conf_extra="failure-delay 0\nmax-auth-failures 3\n") as srv:
        deliver(srv)
        test_config(srv)
        test_max_failures(srv)
        test_nul_and_lines(srv)
        test_timing(srv)
        test_hundreds(srv)
        T.check("failure-delay 0 server: still running", srv.alive(), "")

    # The login timeouts and the delay cap run in threads while the
    # failure delays are measured on a third server.
    with T.Server(users=USERS, starttls=True,
                  conf_extra="login-timeout 5s\nfailure-delay 0\n") as tsrv, \
            T.Server(users=USERS, login_procs=1,
                     conf_extra="failure-delay 20s\n") as csrv, \
            T.Server(users=USERS, login_procs=1,
                     conf_extra="failure-delay 1s\nmax-auth-failures 3\n"
                     ) as dsrv:
        for srv in (tsrv, csrv, dsrv):
            deliver(srv)
        ex, futs = start_timeouts(tsrv)
        cex, cfut = start_cap(csrv)
        try:
            test_delays(dsrv)
        finally:
            check_timeouts(tsrv, ex, futs)
            check_cap(csrv, cex, cfut)
        T.check("failure-delay 1s server: still running", dsrv.alive(), "")
        T.check("failure-delay 20s server: still running", csrv.alive(), "")
        T.check("login-timeout server: still running", tsrv.alive(), "")


T.run(main)
