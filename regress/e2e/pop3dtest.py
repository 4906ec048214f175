"""
pop3dtest: the shared harness of the end-to-end tests (stdlib only).

A test script does

    import pop3dtest as T

    def main():
        with T.Server(users=[("alice", "alicepw", "bcrypt")]) as srv:
            srv.deliver("alice", "1700000001.M1P1.test", b"hi\\n")
            with T.guard("retr"):
                p = srv.pop3s("alice")
                ...
                T.check("retr: message 1", ok, "why not")

    T.run(main)

and prints one line "PASS: name" or "FAIL: name (reason)" per check, which
regress/run.sh tallies.  The process exits 1 if any check failed.

The Server starts the real build/pop3d on a free port of 127.0.0.1 with a
throwaway certificate, a users file, Maildirs and a chroot dir in a temp dir
under /tmp, which is removed afterwards unless POP3D_KEEP=1.  It has to run
as root: the master binds, chroots and changes uids.

Environment: POP3D_BUILD (default: <repo>/build), POP3D_KEEP=1 (keep the temp
dir), POP3D_LOG=1 (always show the server log, not only after a failure).
"""

import contextlib
import os
import pwd
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import poplib

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("POP3D_BUILD",
                                       os.path.join(REPO, "build")))
UNPRIV = "_pop3d"
HOST = "127.0.0.1"
TIMEOUT = 20            # seconds, any one socket operation of a client
FIRST_UID = 61001

_passed = 0
_failed = 0


# ---------------------------------------------------------------- results

def check(name, cond, detail=""):
    """Print PASS: name or FAIL: name (detail); return bool(cond)."""
    global _passed, _failed
    name = " ".join(str(name).split())
    if cond:
        _passed += 1
        print("PASS: %s" % name, flush=True)
        return True
    _failed += 1
    detail = " ".join(str(detail).split())
    if len(detail) > 300:
        detail = detail[:300] + "..."
    if detail:
        print("FAIL: %s (%s)" % (name, detail), flush=True)
    else:
        print("FAIL: %s" % name, flush=True)
    return False


def failures():
    return _failed


def note(msg):
    """A comment line: shown by the runner, never counted."""
    for line in str(msg).splitlines() or [""]:
        print("# " + line, flush=True)


@contextlib.contextmanager
def guard(name):
    """Run a block; an exception escaping it is one FAIL named name."""
    try:
        yield
    except Exception as e:                  # noqa: BLE001 - report, go on
        check(name, False, "%s: %s" % (type(e).__name__, e))
        note(traceback.format_exc().rstrip())


def _on_term(signo, frame):
    # timeout(1) or the runner ends us: unwind so that Server.__exit__
    # stops the daemon and removes the temp dir.
    raise SystemExit(128 + signo)


def run(main):
    """Run a test script's main(); exit 1 if any check failed."""
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    script = os.path.basename(sys.argv[0])
    if os.geteuid() != 0:
        check(script, False, "must run as root")
        sys.exit(1)
    try:
        main()
    except SystemExit as e:
        check(script, False, "ended by signal or exit %s" % e.code)
    except BaseException as e:              # noqa: BLE001
        check(script, False, "%s: %s" % (type(e).__name__, e))
        note(traceback.format_exc().rstrip())
    if _passed + _failed == 0:
        check(script, False, "no checks ran")
    sys.exit(1 if _failed else 0)


# ---------------------------------------------------------------- messages

def expected(data):
    """What RETR must send for a file's bytes, before dot-stuffing: every
    LF not preceded by CR becomes CRLF, and a non-empty message that does
    not end with LF gets a CRLF.  Its length is the STAT/LIST size."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    if data and not data.endswith(b"\n"):
        out += b"\r\n"
    return out


def wire(data):
    """The exact bytes of a RETR reply's body on the wire for a file's
    bytes: expected(data), dot-stuffed, and the terminating line."""
    lines = expected(data).split(b"\r\n")
    # expected() ends with CRLF when non-empty: the last piece is b"".
    body = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                    for l in lines[:-1])
    return body + b".\r\n"


def joined(lines):
    """Rebuild a message from poplib's retr() lines."""
    return b"\r\n".join(lines) + b"\r\n" if lines else b""


def big_message(size=5 * 1024 * 1024, seed=1939):
    """About size bytes of printable lines with bare LF, some starting with
    a dot; deterministic.  Lines stay well under poplib's 2048 limit."""
    rnd = random.Random(seed)
    alphabet = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                b"0123456789 .,;:!?-_=+*/()<>[]{}'\"#$%&@^`|~\\\t")
    head = (b"From: big@example.org\nTo: alice@example.org\n"
            b"Subject: five mebibytes\n\n")
    parts = [head]
    n = len(head)
    while n < size:
        k = rnd.randrange(0, 120)
        line = bytes(rnd.choice(alphabet) for _ in range(k))
        if rnd.randrange(40) == 0:
            line = b"." + line
        line += b"\n"
        parts.append(line)
        n += len(line)
    return b"".join(parts)[:size - 1] + b"\n"


# ---------------------------------------------------------------- processes

def _read(path, binary=False):
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read()
    except OSError:
        return None


def proc_ppid(pid):
    stat = _read("/proc/%d/stat" % pid)
    if stat is None:
        return None
    # comm may hold spaces and parens: fields follow the last ')'.
    return int(stat[stat.rindex(")") + 2:].split()[1])


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(pid):
    """PIDs of every process below pid, by a walk of the ppid links."""
    children = {}
    for p in all_pids():
        pp = proc_ppid(p)
        if pp is not None:
            children.setdefault(pp, []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def proc_names(pid):
    """Names a process goes by: comm, the basenames of exe and argv[0]."""
    names = set()
    comm = _read("/proc/%d/comm" % pid)
    if comm:
        names.add(comm.strip())
    try:
        names.add(os.path.basename(os.readlink("/proc/%d/exe" % pid))
                  .replace(" (deleted)", ""))
    except OSError:
        pass
    cmd = _read("/proc/%d/cmdline" % pid, binary=True)
    if cmd:
        argv0 = cmd.split(b"\0")[0].decode(errors="replace")
        names.add(os.path.basename(argv0.split(":")[0].split()[0])
                  if argv0.split() else argv0)
    return names


def proc_is(pid, prog):
    return any(n == prog or n.startswith(prog + ":") for n in proc_names(pid))


def proc_ids(pid):
    """{'Uid': [r, e, s, fs], 'Gid': [...], 'Groups': [...]}."""
    st = _read("/proc/%d/status" % pid)
    out = {}
    for line in (st or "").splitlines():
        key, _, val = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            out[key] = [int(x) for x in val.split()]
    return out


def proc_root(pid):
    try:
        return os.readlink("/proc/%d/root" % pid)
    except OSError:
        return None


def proc_exe(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid).replace(" (deleted)", "")
    except OSError:
        return None


def wait_for(cond, timeout=10, step=0.05):
    """Poll cond() until true or timeout seconds; return its last value."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


# ---------------------------------------------------------------- set-up

def ensure_unpriv_user():
    try:
        pwd.getpwnam(UNPRIV)
        return
    except KeyError:
        pass
    if subprocess.run(["getent", "passwd", UNPRIV],
                      stdout=subprocess.DEVNULL).returncode == 0:
        return
    nologin = "/usr/sbin/nologin"
    if not os.path.exists(nologin):
        nologin = "/sbin/nologin"
    subprocess.run(["useradd", "--system", "--no-create-home",
                    "--home-dir", "/var/empty", "--shell", nologin, UNPRIV],
                   check=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def mkhash(method, password):
    exe = os.path.join(BUILD, "mkhash")
    r = subprocess.run([exe, method, password], capture_output=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("mkhash %s failed: %s" %
                           (method, r.stderr.decode(errors="replace")))
    return r.stdout.decode().strip()


class User:
    def __init__(self, name, password, method, uid, maildir):
        self.name = name
        self.password = password
        self.method = method
        self.uid = uid
        self.gid = uid
        self.maildir = maildir

    def __repr__(self):
        return "User(%s)" % self.name


class Server:
    """The real pop3d on 127.0.0.1 with everything it needs in a temp dir.

    users: list of (name, password[, method[, options]]) with method one of
    bcrypt, yescrypt, sha512 (default bcrypt) and options the users file's
    option field (e.g. "tls-only").  starttls=True and plain=True add
    listeners on self.stls_port (STLS) and self.plain_port (no TLS)."""

    def __init__(self, users=(("alice", "alicepw", "bcrypt"),),
                 login_procs=2, conf_extra="", starttls=False, plain=False,
                 control=False, args=()):
        self.user_specs = list(users)
        # control: a control socket at self.ctl_sock (<tmp>/ctl.sock) for
        # pop3ctl -s; args: more pop3d options (e.g. ["-D", "x=y"]).
        self.control = control
        self.ctl_sock = None
        self.args = list(args)
        # starttls/plain: also listen on self.stls_port (STLS, RFC 2595)
        # and on self.plain_port (no TLS at all).
        self.starttls = starttls
        self.plain = plain
        self.stls_port = None
        self.plain_port = None
        self.login_procs = login_procs
        self.conf_extra = conf_extra
        self.users = {}
        self.tmp = None
        self.proc = None
        self.port = None
        self.logf = None
        self.seen = set()       # every descendant PID we have noticed
        self.started = False    # up and accepting connections
        self._failed_at_start = 0

    # -- set-up

    def __enter__(self):
        self._failed_at_start = _failed
        try:
            self._setup()
            self._start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _setup(self):
        for prog in ("pop3d", "pop3d-login", "pop3d-mailbox", "mkhash"):
            path = os.path.join(BUILD, prog)
            if not os.access(path, os.X_OK):
                raise RuntimeError("%s is not built (run make)" % path)
        ensure_unpriv_user()
        self.tmp = os.path.realpath(tempfile.mkdtemp(prefix="pop3d-test."))
        os.chmod(self.tmp, 0o755)
        self.chroot = os.path.join(self.tmp, "empty")
        os.mkdir(self.chroot, 0o755)
        os.chown(self.chroot, 0, 0)
        os.chmod(self.chroot, 0o755)

        self.cert = os.path.join(self.tmp, "cert.pem")
        self.key = os.path.join(self.tmp, "key.pem")
        make_cert(self.cert, self.key)

        lines = []
        for i, spec in enumerate(self.user_specs):
            name, password = spec[0], spec[1]
            method = spec[2] if len(spec) > 2 else "bcrypt"
            options = spec[3] if len(spec) > 3 else ""   # e.g. "tls-only"
            uid = FIRST_UID + i
            home = os.path.join(self.tmp, "mail", name)
            maildir = os.path.join(home, "Maildir")
            os.makedirs(home, 0o755)
            os.chmod(os.path.join(self.tmp, "mail"), 0o755)
            os.chown(home, uid, uid)
            os.mkdir(maildir, 0o700)
            os.chown(maildir, uid, uid)
            for sub in ("new", "cur", "tmp"):
                d = os.path.join(maildir, sub)
                os.mkdir(d, 0o700)
                os.chown(d, uid, uid)
            u = User(name, password, method, uid, maildir)
            self.users[name] = u
            lines.append("%s:%s:%d:%d:%s:%s" %
                         (name, mkhash(method, password), uid, uid, maildir,
                          options))
        self.users_file = os.path.join(self.tmp, "users")
        with open(self.users_file, "w") as f:
            f.write("# written by regress/e2e/pop3dtest.py\n")
            f.write("\n".join(lines) + "\n")
        os.chmod(self.users_file, 0o600)

        self.port = free_port()
        self.conf = os.path.join(self.tmp, "pop3d.conf")
        with open(self.conf, "w") as f:
            f.write('pki localhost cert "%s"\n' % self.cert)
            f.write('pki localhost key "%s"\n' % self.key)
            f.write("listen on %s port %d tls pki localhost\n" %
                    (HOST, self.port))
            taken = {self.port}
            for kind in ("starttls", "plain"):
                if not getattr(self, kind):
                    continue
                port = free_port()
                while port in taken:
                    port = free_port()
                taken.add(port)
                if kind == "starttls":
                    self.stls_port = port
                    f.write("listen on %s port %d starttls pki localhost\n"
                            % (HOST, port))
                else:
                    self.plain_port = port
                    f.write("listen on %s port %d\n" % (HOST, port))
            f.write('auth passwd "%s"\n' % self.users_file)
            f.write('user "%s"\n' % UNPRIV)
            f.write('chroot "%s"\n' % self.chroot)
            f.write("login-processes %d\n" % self.login_procs)
            # Always in the temp dir: never a real pop3d's socket.
            self.ctl_sock = os.path.join(self.tmp, "ctl.sock")
            f.write('control socket "%s"\n' % self.ctl_sock)
            if self.conf_extra:
                f.write(self.conf_extra.rstrip("\n") + "\n")
        self.log = os.path.join(self.tmp, "pop3d.log")

    def _start(self):
        self.logf = open(self.log, "wb")
        cmd = [os.path.join(BUILD, "pop3d"), "-d", "-v", "-x", BUILD,
               "-f", self.conf] + self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf,
                                     cwd=self.tmp)
        self.pid = self.proc.pid
        # Wait (bounded) for a TLS greeting: then the listener is bound and
        # a login process is up.  A port that accepts TCP but gives no
        # greeting is left to the tests to report.
        end = time.monotonic() + 10
        connected, last = False, None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("pop3d exited with status %s at start" %
                                   self.proc.returncode)
            try:
                with self.raw() as c:
                    connected = True
                    c.sock.settimeout(2)
                    g = c.readline()
                    if g.startswith(b"+OK"):
                        c.send(b"QUIT\r\n")
                        c.readline()
                        break
                    last = "greeting %r" % g
            except ConnectionRefusedError as e:
                last = e
            except (OSError, EOFError, ValueError, ssl.SSLError) as e:
                connected, last = True, e
            if time.monotonic() >= end:
                if not connected:
                    raise RuntimeError("pop3d does not accept connections "
                                       "on %s:%d after 10s (%s)" %
                                       (HOST, self.port, last))
                note("no greeting from pop3d within 10s: %s" % last)
                break
            time.sleep(0.05)
        self.seen.update(descendants(self.pid))
        self.started = True

    # -- tear-down

    def __exit__(self, etype, evalue, tb):
        try:
            if self.proc is not None:
                self._stop()
            if self.logf is not None:
                self.logf.close()
                self.check_sanitizers()
            show = (etype is not None or _failed > self._failed_at_start or
                    os.environ.get("POP3D_LOG") == "1")
            if show and self.tmp is not None:
                self.show_log()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.tmp is not None:
                if os.environ.get("POP3D_KEEP") == "1":
                    note("kept %s" % self.tmp)
                else:
                    shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def _stop(self):
        script = os.path.basename(sys.argv[0])
        self.seen.update(descendants(self.pid))
        exited = True
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                exited = False
                note("pop3d did not exit 10s after SIGTERM: SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)

        # The master must take its children with it.  Any left behind are
        # ours (seen below our master, running our binaries): kill them.
        def leftovers():
            return [p for p in sorted(self.seen)
                    if (proc_exe(p) or "").startswith(BUILD + os.sep)]
        wait_for(lambda: not leftovers(), timeout=5)
        left = leftovers()
        detail = ", ".join("%d %s" % (p, sorted(proc_names(p)))
                           for p in left)
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if self.started:
            check("%s: pop3d exits on SIGTERM" % script, exited,
                  "still running after 10s")
            check("%s: no pop3d processes left after SIGTERM" % script,
                  not left, "left: " + detail)
        elif left:
            note("killed processes left behind: " + detail)
        self.proc = None

    def check_sanitizers(self):
        """In a sanitizer build (make sanitize) a report by any daemon in
        the log is a FAIL, and shows the log."""
        text = (_read(self.log, binary=True) or b"").decode(errors="replace")
        m = re.search(r"ERROR: (Address|Leak)Sanitizer.*|.*runtime error:.*",
                      text)
        if m:
            check("%s: no sanitizer report in the pop3d log" %
                  os.path.basename(sys.argv[0]), False, m.group(0))

    def show_log(self, lines=200):
        text = _read(self.log, binary=True) or b""
        tail = text.decode(errors="replace").splitlines()[-lines:]
        note("---- pop3d log (%s, last %d lines) ----" % (self.log, lines))
        for line in tail:
            note(line)
        note("---- end of pop3d log ----")

    # -- mail

    def user(self, name):
        return self.users[name]

    def deliver(self, user, name, data, subdir="new"):
        """Write a message file into user's Maildir, owned by the user."""
        u = self.users[user]
        path = os.path.join(u.maildir, subdir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chown(path, u.uid, u.gid)
        os.chmod(path, 0o600)
        return path

    def files(self, user):
        """{'new': [...], 'cur': [...]}: the names in the Maildir."""
        u = self.users[user]
        return {sub: sorted(os.listdir(os.path.join(u.maildir, sub)))
                for sub in ("new", "cur")}

    def messages(self, user):
        """Base names (before ':') of the messages in new/ and cur/,
        dot files left out, sorted."""
        out = []
        for names in self.files(user).values():
            out += [n.split(":")[0] for n in names if not n.startswith(".")]
        return sorted(out)

    # -- processes

    def children(self):
        """[(pid, kind)] of the processes below the master, kind one of
        'login', 'mailbox' or 'other'."""
        out = []
        for p in descendants(self.pid):
            self.seen.add(p)
            if proc_is(p, "pop3d-login"):
                out.append((p, "login"))
            elif proc_is(p, "pop3d-mailbox"):
                out.append((p, "mailbox"))
            else:
                out.append((p, "other"))
        return out

    def login_pids(self):
        return [p for p, k in self.children() if k == "login"]

    def mailbox_pids(self):
        return [p for p, k in self.children() if k == "mailbox"]

    def wait_sessions_done(self, timeout=10):
        """Wait until no mailbox process is left; True if none is."""
        return bool(wait_for(lambda: not self.mailbox_pids(), timeout))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- clients

    def context(self, verify=True):
        if not verify:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context(cafile=self.cert)
        return ctx

    def pop3s(self, user=None, password=None):
        """A poplib.POP3_SSL connected to the server (certificate checked),
        logged in with USER/PASS when user is given."""
        p = poplib.POP3_SSL(HOST, self.port, context=self.context(),
                            timeout=TIMEOUT)
        if user is not None:
            if password is None:
                password = self.users[user].password
            p.user(user)
            p.pass_(password)
        return p

    def raw(self, tls=True, port=None):
        """A RawConn: bytes in, bytes out, over TLS (default) or TCP; to
        self.port unless port is given (e.g. self.stls_port, tls=False)."""
        s = socket.create_connection((HOST, port or self.port),
                                     timeout=TIMEOUT)
        if tls:
            try:
                s = self.context().wrap_socket(s, server_hostname=HOST)
            except BaseException:
                s.close()
                raise
        return RawConn(s)

    def url(self, user, password=None, path=""):
        if password is None:
            password = self.users[user].password
        return "pop3s://%s:%s@%s:%d/%s" % (user, password, HOST, self.port,
                                           path)


def make_cert(cert, key):
    base = ["openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=localhost", "-days", "2",
            "-keyout", key, "-out", cert]
    san = ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
    r = subprocess.run(base + san, capture_output=True, timeout=60)
    if r.returncode != 0:       # an openssl without -addext
        r = subprocess.run(base, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl req failed: %s" %
                           r.stderr.decode(errors="replace"))
    os.chmod(key, 0o600)


class RawConn:
    """A client socket with line reading, for exact wire checks."""

    MAXLINE = 64 * 1024

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def starttls(self, ctx, server_hostname=HOST):
        """After +OK to STLS: run the TLS handshake on the socket.  Returns
        the bytes that were read ahead but not consumed (there should be
        none); they are dropped."""
        left, self.buf = self.buf, b""
        self.sock = ctx.wrap_socket(self.sock,
                                    server_hostname=server_hostname)
        return left

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.buf += data

    def readline(self):
        """One line with its CRLF (or LF); EOFError at end of stream."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > self.MAXLINE:
                raise ValueError("line longer than %d" % self.MAXLINE)
            self._fill()

    def cmd(self, line):
        """Send a command, return the first reply line."""
        self.send(line if isinstance(line, bytes) else line.encode())
        return self.readline()

    def multiline(self):
        """The rest of a multi-line reply, raw, up to and with '.\\r\\n'."""
        parts = []
        total = 0
        while True:
            line = self.readline()
            parts.append(line)
            total += len(line)
            if line == b".\r\n":
                return b"".join(parts)
            if total > 64 * 1024 * 1024:
                raise ValueError("multi-line reply too long")

    def closed(self, timeout=5):
        """True if the server closes the connection within timeout (data
        still pending is read and dropped)."""
        self.sock.settimeout(timeout)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                if not self.sock.recv(65536):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except (OSError, ssl.SSLError):
            return True
        return False

