"""
loginlib: helpers for the AUTHORIZATION-state tests of issue 3 (STLS, SASL,
CAPA, privacy mode, abuse limits, TLS settings): test_stls.py,
test_sasl.py, test_privacy.py, test_abuse.py and test_tlsconf.py.

Everything here works on pop3dtest.RawConn objects; nothing starts or ends
a process except conf_check(), which runs `pop3d -n` and waits for it.
"""

import base64
import os
import socket
import ssl
import subprocess
import tempfile
import time

import pop3dtest as T

# The reply texts of the spec, as prefixes.
GREETING = b"+OK pop3d ready."
NEED_TLS = b"-ERR [AUTH] Login requires TLS (use STLS)."
TLS_ONLY = b"-ERR [AUTH] This account requires TLS."
BAD_LOGIN = b"-ERR [AUTH] Invalid user name or password."
TOO_MANY = b"-ERR [AUTH] Too many failed logins; closing."
LOGGED_IN = b"+OK Logged in."
BEGIN_TLS = b"+OK Begin TLS negotiation."
TLS_ACTIVE = b"-ERR Command not permitted when TLS active."
NO_STLS = b"-ERR STLS not available."
ALREADY = b"-ERR Already logged in."
USER_FIRST = b"-ERR Send USER first."
CANCELLED = b"-ERR Authentication cancelled."
UNSUPPORTED = b"-ERR [AUTH] Unsupported SASL mechanism."
BAD_B64 = b"-ERR [AUTH] Invalid base64 data."
MALFORMED = b"-ERR [AUTH] Malformed PLAIN response."
AUTHZ = b"-ERR [AUTH] Authorization identity must match."
NO_CERT = b"-ERR [AUTH] No client certificate."
TOO_LONG = b"-ERR Line too long."
BAD_CHARS = b"-ERR Invalid characters in command."
CONTINUE = b"+ \r\n"


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data)


def plain(authcid, password, authzid=b""):
    """The base64 of a SASL PLAIN message (RFC 4616)."""
    parts = [x.encode() if isinstance(x, str) else x
             for x in (authzid, authcid, password)]
    return b64(parts[0] + b"\0" + parts[1] + b"\0" + parts[2])


def want_capa(stls=False, login=False, external=False, impl=True):
    """The exact AUTHORIZATION-state CAPA lines of the spec, in order."""
    w = [b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING"]
    if stls:
        w.append(b"STLS")
    if login:
        w.append(b"USER")
        w.append(b"SASL PLAIN EXTERNAL" if external else b"SASL PLAIN")
    if impl:
        w.append(b"IMPLEMENTATION pop3d")
    return w


def capa(c):
    """CAPA on c: (first reply line, [capability lines] or None)."""
    r = c.cmd(b"CAPA\r\n")
    if not r.startswith(b"+OK"):
        return r, None
    body = c.multiline()
    return r, body.split(b"\r\n")[:-2]


def names(lines):
    """The capability names (first words, upper case) of CAPA lines."""
    return [l.split()[0].upper() for l in (lines or []) if l.split()]


def mechs(lines):
    """The SASL mechanisms a CAPA lists."""
    for l in lines or []:
        w = l.split()
        if w and w[0].upper() == b"SASL":
            return [m.upper() for m in w[1:]]
    return []


def auth_list(c):
    """AUTH alone: (first line, [mechanism lines] or None)."""
    r = c.cmd(b"AUTH\r\n")
    if not r.startswith(b"+OK"):
        return r, None
    return r, c.multiline().split(b"\r\n")[:-2]


def greet(c):
    """Read the greeting; check-free, returns it."""
    return c.readline()


def plain_conn(srv, port):
    """A RawConn over TCP to port, greeting read."""
    c = srv.raw(tls=False, port=port)
    c.greeting = greet(c)
    return c


def tls_conn(srv, ctx=None):
    """A RawConn over implicit TLS, greeting read."""
    if ctx is None:
        c = srv.raw()
    else:
        s = socket.create_connection((T.HOST, srv.port), timeout=T.TIMEOUT)
        try:
            s = ctx.wrap_socket(s, server_hostname=T.HOST)
        except BaseException:
            s.close()
            raise
        c = T.RawConn(s)
    c.greeting = greet(c)
    return c


def stls(c, ctx):
    """STLS on c: (reply, bytes read ahead before the handshake).  Runs the
    handshake only if the reply is +OK; SSL errors propagate."""
    r = c.cmd(b"STLS\r\n")
    if not r.startswith(b"+OK"):
        return r, b""
    return r, c.starttls(ctx)


def stls_conn(srv, ctx=None):
    """A RawConn on the starttls port, upgraded with STLS; raises if the
    upgrade fails."""
    c = plain_conn(srv, srv.stls_port)
    try:
        r, _ = stls(c, ctx or srv.context())
        if not r.startswith(b"+OK"):
            raise RuntimeError("STLS refused: %r" % r)
    except BaseException:
        c.close()
        raise
    return c


def pending(c, wait=0.5):
    """Whatever the server sends within wait seconds (read-ahead
    included), b"" if nothing; a close or error ends the wait."""
    data, c.buf = c.buf, b""
    end = time.monotonic() + wait
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            c.sock.settimeout(left)
            d = c.sock.recv(65536)
            if not d:
                break
            data += d
    except (socket.timeout, TimeoutError):
        pass
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            c.sock.settimeout(T.TIMEOUT)
        except OSError:
            pass
    return data


def reply_or_close(c, data, timeout=10):
    """Send data; the next line, or b"" if the server closes.  A server
    that neither answers nor closes within timeout raises socket.timeout."""
    c.sock.settimeout(timeout)
    try:
        c.send(data)
        return c.readline()
    except (ConnectionError, EOFError, ssl.SSLEOFError,
            ssl.SSLZeroReturnError):
        return b""
    finally:
        try:
            c.sock.settimeout(T.TIMEOUT)
        except OSError:
            pass


def timed(c, data):
    """Send data; (first reply line or b"" on close, seconds it took)."""
    t0 = time.monotonic()
    r = reply_or_close(c, data, timeout=T.TIMEOUT)
    return r, time.monotonic() - t0


def login(c, user, password):
    """USER/PASS on c: the PASS reply (or the USER one if not +OK)."""
    r = c.cmd(("USER %s\r\n" % user).encode())
    if not r.startswith(b"+OK"):
        return r
    return c.cmd(b"PASS " + (password.encode() if isinstance(password, str)
                             else password) + b"\r\n")


def stat_line(c):
    return c.cmd(b"STAT\r\n")


def quit(c):
    try:
        return c.cmd(b"QUIT\r\n")
    except (OSError, EOFError, ssl.SSLError):
        return b""


def conf_check(srv, extra):
    """Run build/pop3d -n on the server's configuration plus extra lines:
    (exit status, output)."""
    with open(srv.conf) as f:
        base = f.read()
    fd, path = tempfile.mkstemp(prefix="conf.", dir=srv.tmp)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(base + extra.rstrip("\n") + "\n")
        r = subprocess.run([os.path.join(T.BUILD, "pop3d"), "-n", "-f", path],
                           capture_output=True, timeout=30)
        return r.returncode, (r.stdout + r.stderr).decode(errors="replace")
    finally:
        os.unlink(path)


def normal_login_works(srv, user, what, want_stat=None):
    """A fresh poplib POP3_SSL client logs in as user and runs STAT."""
    with T.guard("normal client after %s" % what):
        p = srv.pop3s(user)
        st = p.stat()
        T.check("normal client logs in and STATs after %s" % what,
                want_stat is None or st == want_stat,
                "STAT %s, want %s" % (st, want_stat))
        if st[0] > 0:
            size = int(p.list(1).split()[2])
            _, lines, _ = p.retr(1)
            T.check("normal client fetches message 1 after %s" % what,
                    len(T.joined(lines)) == size,
                    "%d octets, LIST says %d" % (len(T.joined(lines)), size))
        p.quit()
    srv.wait_sessions_done()
