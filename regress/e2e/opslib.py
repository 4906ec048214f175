"""
opslib: helpers for the operator-feature tests (test_ops_*.py): pop3ctl,
the server's log, editing a running server's users file and
configuration, certificates with a chosen CN.

Nothing here starts a long-lived process: pop3ctl and openssl runs are
waited for, with a time limit.
"""

import os
import re
import socket
import ssl
import subprocess

import pop3dtest as T

CTL = os.path.join(T.BUILD, "pop3ctl")
POP3D = os.path.join(T.BUILD, "pop3d")

# Fast failed logins: the penalty grows with the failures of 127.0.0.1.
NO_DELAY = "failure-delay 0s\n"


class Result:
    """What a finished command did: rc, out, err (str)."""

    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out
        self.err = err

    def __repr__(self):
        return "rc=%s out=%r err=%r" % (self.rc, self.out[-300:],
                                         self.err[-300:])


def run(cmd, timeout=20, stdin=subprocess.DEVNULL, input=None, **kw):
    """Run cmd to its end (killed after timeout seconds: rc None).  No
    controlling tty, so that nothing can prompt there."""
    if input is not None:
        stdin = subprocess.PIPE
    p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True,
                         **kw)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        rc = None
    return Result(rc, out.decode(errors="replace"),
                  err.decode(errors="replace"))


def as_nobody(cmd):
    """cmd run as nobody:nogroup with no supplementary groups."""
    return ["setpriv", "--reuid=nobody", "--regid=nogroup",
            "--clear-groups"] + list(cmd)


def ctl(srv, *args, sock=None, timeout=20):
    """pop3ctl -s <srv's control socket> args..."""
    return run([CTL, "-s", sock or srv.ctl_sock] + list(args),
               timeout=timeout)


def parse_stats(text):
    """pop3ctl show stats -> {'now', 'sessions', 'ok', 'failed',
    'retrieved', 'deleted', 'bytes'} (ints), or None."""
    pats = {
        "now": r"^sessions: (\d+) now, (\d+) in all$",
        "ok": r"^logins: (\d+) ok, (\d+) failed$",
        "retrieved": r"^messages: (\d+) retrieved, (\d+) deleted$",
        "bytes": r"^bytes sent: (\d+)$",
    }
    out = {}
    for key, pat in pats.items():
        m = re.search(pat, text, re.M)
        if m is None:
            return None
        if key == "now":
            out["now"], out["sessions"] = int(m.group(1)), int(m.group(2))
        elif key == "ok":
            out["ok"], out["failed"] = int(m.group(1)), int(m.group(2))
        elif key == "retrieved":
            out["retrieved"], out["deleted"] = (int(m.group(1)),
                                                int(m.group(2)))
        else:
            out["bytes"] = int(m.group(1))
    return out


# ---------------------------------------------------------------- the log

def log_bytes(srv):
    try:
        with open(srv.log, "rb") as f:
            return f.read()
    except OSError:
        return b""


def log_text(srv, start=0):
    """The server's log from byte offset start on, as text."""
    return log_bytes(srv)[start:].decode(errors="replace")


def log_size(srv):
    return len(log_bytes(srv))


def wait_log(srv, pattern, start=0, timeout=10):
    """Wait for a line matching the regex pattern after offset start;
    the match object or None."""
    rx = re.compile(pattern, re.M)
    return T.wait_for(lambda: rx.search(log_text(srv, start)), timeout)


# ---------------------------------------------------------------- edits

def write_file(path, text, mode=0o600):
    """Replace path's contents at once (rename): a reload never sees a
    half-written file."""
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def read_file(path):
    with open(path) as f:
        return f.read()


def make_maildir(home, uid, gid):
    """home/Maildir/{new,cur,tmp}, all owned by uid:gid; the Maildir."""
    os.makedirs(home, 0o755, exist_ok=True)
    os.chown(home, uid, gid)
    maildir = os.path.join(home, "Maildir")
    os.mkdir(maildir, 0o700)
    os.chown(maildir, uid, gid)
    for sub in ("new", "cur", "tmp"):
        d = os.path.join(maildir, sub)
        os.mkdir(d, 0o700)
        os.chown(d, uid, gid)
    return maildir


def add_user(srv, name, password, method="bcrypt", hashed=None):
    """A new user in srv's users file (read at the next reload), with a
    Maildir; srv.users knows it, so srv.deliver() works."""
    uid = max([u.uid for u in srv.users.values()] + [T.FIRST_UID]) + 1
    home = os.path.join(srv.tmp, "mail", name)
    maildir = make_maildir(home, uid, uid)
    if hashed is None:
        hashed = T.mkhash(method, password)
    text = read_file(srv.users_file)
    text += "%s:%s:%d:%d:%s:\n" % (name, hashed, uid, uid, maildir)
    write_file(srv.users_file, text)
    srv.users[name] = T.User(name, password, method, uid, maildir)
    return srv.users[name]


def set_password(srv, name, password, method="bcrypt"):
    """Change name's hash in srv's users file."""
    lines = read_file(srv.users_file).splitlines()
    out = []
    for line in lines:
        f = line.split(":")
        if f[0] == name:
            f[1] = T.mkhash(method, password)
            line = ":".join(f)
        out.append(line)
    write_file(srv.users_file, "\n".join(out) + "\n")
    srv.users[name].password = password


def remove_user(srv, name):
    lines = [l for l in read_file(srv.users_file).splitlines()
             if l.split(":")[0] != name]
    write_file(srv.users_file, "\n".join(lines) + "\n")


# ---------------------------------------------------------------- network

def make_cert(cert, key, cn):
    """A self-signed EC certificate for CN cn, valid for 127.0.0.1."""
    base = ["openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=%s" % cn, "-days", "2",
            "-keyout", key, "-out", cert]
    r = run(base + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            timeout=60)
    if r.rc != 0:
        r = run(base, timeout=60)
    if r.rc != 0:
        raise RuntimeError("openssl req failed: %s" % r.err)
    os.chmod(key, 0o600)


def peer_cert(port):
    """The DER certificate a new TLS connection to port is shown."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((T.HOST, port), timeout=T.TIMEOUT) as s:
        with ctx.wrap_socket(s, server_hostname=T.HOST) as t:
            return t.getpeercert(binary_form=True)


def cert_cn(der):
    """The subject CN of a DER certificate, by openssl x509."""
    r = run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
            input=der, timeout=30)
    m = re.search(r"CN\s*=\s*([^,/\n]+)", r.out)
    return m.group(1).strip() if m else None


def file_der(cert):
    return ssl.PEM_cert_to_DER_cert(read_file(cert))


def greeting(port, tls=True, timeout=5):
    """The first line a new connection to port gets, b"" if it closes;
    raises ConnectionRefusedError if nothing listens."""
    s = socket.create_connection((T.HOST, port), timeout=timeout)
    try:
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname=T.HOST)
        c = T.RawConn(s)
        try:
            line = c.readline()
        except EOFError:
            return b""
        try:
            c.send(b"QUIT\r\n")
            c.readline()
        except (OSError, EOFError, ssl.SSLError):
            pass
        return line
    finally:
        s.close()


def refused(port):
    """True if nothing accepts on 127.0.0.1:port."""
    try:
        with socket.create_connection((T.HOST, port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def capa(srv, port=None):
    """The CAPA names (upper case) before login on a new TLS connection."""
    with raw(srv, port) as c:
        c.readline()
        r = c.cmd(b"CAPA\r\n")
        if not r.startswith(b"+OK"):
            return None
        body = c.multiline()
        c.cmd(b"QUIT\r\n")
    return [l.split()[0].upper().decode() for l in body.split(b"\r\n")
            if l and l != b"."]


def raw(srv, port=None):
    """A TLS RawConn to port (default srv.port), certificate not
    checked (the certificate may be changing under the test)."""
    s = socket.create_connection((T.HOST, port or srv.port),
                                 timeout=T.TIMEOUT)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        s = ctx.wrap_socket(s, server_hostname=T.HOST)
    except BaseException:
        s.close()
        raise
    return T.RawConn(s)


def try_login(srv, user, password, port=None, quit=True):
    """USER/PASS on a new TLS connection: (reply to PASS or the first
    -ERR, conn).  The connection is closed (QUIT first) when quit."""
    c = raw(srv, port)
    try:
        g = c.readline()
        if not g.startswith(b"+OK"):
            return g, c
        r = c.cmd(b"USER %s\r\n" % user.encode())
        if r.startswith(b"+OK"):
            r = c.cmd(b"PASS %s\r\n" % password.encode())
        if quit:
            try:
                c.send(b"QUIT\r\n")
                c.readline()
            except (OSError, EOFError, ssl.SSLError):
                pass
        return r, c
    finally:
        if quit:
            c.close()


def login_reply(srv, user, password, port=None):
    """The reply to PASS (or an earlier -ERR) on a new connection."""
    r, _ = try_login(srv, user, password, port)
    return r


def alive_pids(pids):
    return [p for p in pids if os.path.exists("/proc/%d" % p)]


def wait_gone(pids, timeout=10):
    return T.wait_for(lambda: not alive_pids(pids), timeout)
