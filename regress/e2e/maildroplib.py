"""
maildroplib: helpers for the mailbox tests (test_uidl, test_mbox,
test_crash, test_shapes, test_lock) and regress/bench/bench_mailbox.py.

MboxServer is pop3dtest's Server with mbox maildrops: a spool directory
like /var/mail (root's, 0755, so only root may write it: the mailbox
process must not need to), one mbox file per user, owned by the user.
deliver_mbox() appends a message the way mail.local(8) does, with its
locks.  parse_mbox() is an independent reading of the format, to check
what the server says against.
"""

import contextlib
import errno
import fcntl
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402


# ---------------------------------------------------------------- servers

class MboxServer(T.Server):
    """A Server whose users have an mbox in <tmp>/spool/<name>."""

    def __init__(self, users=(("alice", "alice-pw", "bcrypt"),),
                 conf_extra="", **kw):
        conf = 'maildrop mbox "/nonexistent/%u"\n' + conf_extra
        super().__init__(users=users, conf_extra=conf, **kw)

    def _setup(self):
        super()._setup()
        self.spool = os.path.join(self.tmp, "spool")
        os.mkdir(self.spool)
        os.chmod(self.spool, 0o755)
        out = []
        with open(self.users_file) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    out.append(line)
                    continue
                field = line.rstrip("\n").split(":")
                u = self.users[field[0]]
                u.mbox = os.path.join(self.spool, u.name)
                field[4] = u.mbox
                out.append(":".join(field) + "\n")
                create_mbox(u.mbox, u.uid, u.gid)
        with open(self.users_file, "w") as f:
            f.writelines(out)

    def index_dir(self, user):
        return os.path.join(self.spool, ".pop3d", user)


def create_mbox(path, uid, gid, data=b""):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.fchown(fd, uid, gid)
    os.fchmod(fd, 0o600)
    os.close(fd)


def session_pid(srv, user, timeout=5):
    """The mailbox process serving user (its uid is the user's; the
    lock keeper next to it stays root)."""
    uid = srv.user(user).uid

    def find():
        for p in srv.mailbox_pids():
            if T.proc_ids(p).get("Uid", [None])[0] == uid:
                return p
        return None
    return T.wait_for(find, timeout)


def vm_hwm_kib(pid):
    st = T._read("/proc/%d/status" % pid) or ""
    m = re.search(r"^VmHWM:\s+(\d+) kB", st, re.M)
    return int(m.group(1)) if m else None


def login_raw(srv, user, password=None):
    """A RawConn logged in with USER/PASS; returns (conn, PASS reply)."""
    if password is None:
        password = srv.user(user).password
    c = srv.raw()
    c.readline()
    c.cmd(b"USER %s\r\n" % user.encode())
    r = c.cmd(b"PASS %s\r\n" % password.encode())
    return c, r


def uidl_map(c):
    """UIDL over a RawConn: {number: uidl}."""
    r = c.cmd(b"UIDL\r\n")
    if not r.startswith(b"+OK"):
        raise RuntimeError("UIDL: %r" % r)
    out = {}
    for line in c.multiline().split(b"\r\n"):
        if line in (b"", b"."):
            continue
        n, u = line.split(b" ", 1)
        out[int(n)] = u.decode()
    return out


def retr(c, n, top=None):
    """RETR n (or TOP n top) over a RawConn: the unstuffed body."""
    cmd = b"RETR %d\r\n" % n if top is None else b"TOP %d %d\r\n" % (n, top)
    r = c.cmd(cmd)
    if not r.startswith(b"+OK"):
        raise RuntimeError("%r: %r" % (cmd, r))
    raw = c.multiline()
    lines = raw[:-3].split(b"\r\n")
    body = b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)
    return r, body


# ---------------------------------------------------------------- mbox

FROM_DATE = "Mon Jan  1 00:00:00 2024"


def escape(body):
    """mail.local(8): '>' before "From " at the start of the message or
    after an empty line; a final newline; then the empty separator."""
    if body == b"":
        return b"\n"
    out, eline = [], True
    for line in body.split(b"\n")[:-1] if body.endswith(b"\n") else \
            body.split(b"\n"):
        if line == b"":
            eline = True
        else:
            if eline and line.startswith(b"From "):
                line = b">" + line
            eline = False
        out.append(line + b"\n")
    return b"".join(out) + b"\n"


def mbox_entry(body, sender="sender@example.org", date=FROM_DATE):
    return b"From %s %s\n" % (sender.encode(), date.encode()) + escape(body)


@contextlib.contextmanager
def mbox_locked(path, dotlock=True, kernel=True, wait=20):
    """Hold the locks a delivery agent takes: the dot-lock (O_EXCL),
    then fcntl(2) and flock(2), waiting at most wait seconds."""
    lock = path + ".lock"
    end = time.monotonic() + wait
    have_dot = False
    fd = None
    try:
        while dotlock:
            try:
                os.close(os.open(lock, os.O_WRONLY | os.O_CREAT |
                                 os.O_EXCL, 0o600))
                have_dot = True
                break
            except FileExistsError:
                if time.monotonic() > end:
                    raise TimeoutError("dot-lock %s held" % lock)
                time.sleep(0.02)
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
        if kernel:
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    fcntl.lockf(fd, fcntl.LOCK_UN)
                    if time.monotonic() > end:
                        raise TimeoutError("kernel lock on %s" % path)
                    time.sleep(0.02)
        yield fd
    finally:
        if fd is not None:
            os.close(fd)
        if have_dot:
            os.unlink(lock)


def deliver_mbox(path, body, sender="sender@example.org", date=FROM_DATE,
                 **kw):
    """Append one message as mail.local(8) would."""
    with mbox_locked(path, **kw) as fd:
        os.write(fd, mbox_entry(body, sender, date))


def parse_mbox(data):
    """[(offset of From_, message bytes as stored)] of an mbox: a
    From_ line at the start or after an empty line, the message up to
    the empty line before the next From_ line or the end."""
    # Two newlines in front make the start one more "after an empty line".
    d = b"\n\n" + data
    starts = [m.start() - 2 for m in
              re.finditer(rb"(?:(?<=\n\n)|(?<=\n\r\n))From ", d)]
    out = []
    for i, s in enumerate(starts):
        e = starts[i + 1] if i + 1 < len(starts) else len(data)
        chunk = data[s:e]
        nl = chunk.find(b"\n")
        body = b"" if nl < 0 else chunk[nl + 1:]
        # The empty line at the end, if any, is the separator.
        if body == b"\r\n" or body.endswith(b"\n\r\n"):
            body = body[:-2]
        elif body == b"\n" or body.endswith(b"\n\n"):
            body = body[:-1]
        out.append((s, body))
    return out


def unescape(stored):
    """The inverse of escape() without the separator: what RETR gives
    (before CRLF) for a stored message."""
    out, eline = [], True
    for line in stored.split(b"\n"):
        if eline and line.startswith(b">From "):
            line = line[1:]
        eline = line in (b"", b"\r")
        out.append(line)
    return b"\n".join(out)


def mbox_messages(path):
    with open(path, "rb") as f:
        data = f.read()
    return [unescape(b) for _, b in parse_mbox(data)]


# ---------------------------------------------------------------- replies

def transformed(data):
    """RETR's bytes before dot-stuffing, as mailbox/transform.c makes
    them: LF without CR becomes CRLF; a last line without LF gets CRLF,
    or just LF after a CR."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    if data and not data.endswith(b"\n"):
        out += b"\n" if data.endswith(b"\r") else b"\r\n"
    return out


def stuffed(t):
    """Dot-stuffing of transformed() bytes (whole lines)."""
    return re.sub(rb"(?m)^\.", b"..", t)


def top_of(data, k):
    """The part of a message TOP n k sends, before the transform."""
    # Only LF ends a line (splitlines() would split at CR too).
    lines = re.findall(rb"[^\n]*\n|[^\n]+$", data)
    out, body, left = [], False, k
    for line in lines:
        if body:
            if left == 0:
                break
            left -= 1
            out.append(line)
            continue
        out.append(line)
        if line in (b"\n", b"\r\n"):
            body = True
    return b"".join(out)
