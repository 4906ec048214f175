"""Privilege separation seen from the outside (issue 7, "Hardening").

Sandboxes: every login and mailbox process runs under a seccomp filter
(/proc/PID/status Seccomp: 2, NoNewPrivs: 1).  The master had none
(Seccomp: 0); a filter of its own (sandbox_master) is being added: the
test expects Seccomp: 0 unless build/pop3d links sandbox_master, then 2,
and prints the state so that it is on record.  (build/test_sandbox proves
that a forbidden call kills; not repeated.)

Privileges: a login process' root is the empty chroot dir and it holds no
descriptor to a regular file (only sockets, pipes, anonymous inodes,
/dev/null) and no stray copy of a listening socket; a mailbox process'
root is its user's maildrop, another user's maildrop is out of its reach,
it runs with the user's uid/gid and no other group, and its descriptors
point into its own maildrop or are sockets/pipes.  With -d the daemons
share the master's stdio (the log): fds 0-2 are let through when they are
the master's own, and the same checks run strictly on a daemonized pop3d
(no -d), whose stdio is /dev/null.

The master and its login processes' channel: pop3d -x DIR runs a FAKE
pop3d-login (a Python script) that reads its configuration from fd 3 and
then sends one malformed imsg per start: short and over-long
IMSG_AUTH_REQUEST, unknown type, a type of the other direction, length
beyond IMSG_MAXSIZE and below the header, a passed descriptor, and a
descriptor passed with a message whose header does not announce it.  The
master must log why, cut that process off, start a new one, and keep
serving; a last, well-formed IMSG_AUTH_REQUEST must log in (a positive
control for the fake's encoding).  The fake inherits the master's seccomp
filter, if any, as the real one does: it uses no ioctl(2)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import opslib as O  # noqa: E402
import hardenlib as H  # noqa: E402

USERS = [("alice", "alice-pw", "sha512"), ("bob", "bob-pw", "sha512")]


# ---------------------------------------------------------------- helpers

def kind_ok(target):
    """A descriptor a sandboxed process may hold whatever it serves."""
    return (target.startswith(("socket:[", "pipe:[", "anon_inode:")) or
            target == "/dev/null")


def inherited_stdio(srv, pid, fd):
    """fds 0-2 that are the master's own (the log under -d)."""
    return fd <= 2 and H.same_file(pid, fd, srv.pid, fd)


def under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def master_filter_built():
    """build/pop3d installs a filter of its own (common/sandbox.c's
    sandbox_master, linked in): the master's expected Seccomp field."""
    with open(os.path.join(T.BUILD, "pop3d"), "rb") as f:
        return b"sandbox_master" in f.read()


def check_sandbox(what, pid):
    st = H.status(pid)
    T.check("%s: Seccomp: 2 (filter)" % what, st.get("Seccomp") == "2",
            "Seccomp: %s" % st.get("Seccomp"))
    T.check("%s: NoNewPrivs: 1" % what, st.get("NoNewPrivs") == "1",
            "NoNewPrivs: %s" % st.get("NoNewPrivs"))


def check_login_fds(srv, what, pid, strict):
    fds = H.fd_targets(pid)
    bad, regular, stdio = [], [], []
    for fd, t in sorted(fds.items()):
        if not strict and inherited_stdio(srv, pid, fd):
            stdio.append("%d=%s" % (fd, t))
            continue
        if not kind_ok(t):
            bad.append("%d=%s" % (fd, t))
        if H.is_regular(pid, fd):
            regular.append("%d=%s" % (fd, t))
    T.check("%s: only sockets, pipes, anonymous inodes, /dev/null" % what,
            fds and not bad, "others: %s; all: %s" % (bad, fds))
    T.check("%s: no descriptor to a regular file" % what, not regular,
            regular)
    if strict:
        T.check("%s: stdio is /dev/null" % what,
                all(fds.get(i) == "/dev/null" for i in (0, 1, 2)),
                {i: fds.get(i) for i in (0, 1, 2)})
    elif stdio:
        T.note("%s: fds %s are the master's stdio under -d (the log); "
               "let through" % (what, ", ".join(stdio)))
    # One copy of each listening socket: a second one was inherited.
    table = H.tcp_table()
    listen = {ino: fdl for ino, fdl in H.socket_inodes(pid).items()
              if ino in table and table[ino][2] == H.TCP_LISTEN}
    dups = {ino: fdl for ino, fdl in listen.items() if len(fdl) > 1}
    T.check("%s: holds its listening socket once (no copy inherited "
            "from the master)" % what, listen and not dups,
            "listening socket inode -> fds: %s; all fds: %s" %
            (listen, fds))


def check_mailbox_fds(srv, what, pid, root, others, strict):
    fds = H.fd_targets(pid)
    bad, stdio = [], []
    for fd, t in sorted(fds.items()):
        if not strict and inherited_stdio(srv, pid, fd):
            stdio.append("%d=%s" % (fd, t))
            continue
        if kind_ok(t):
            continue
        if t.startswith("/") and under(t, root) and \
                not any(under(t, o) for o in others):
            continue
        bad.append("%d=%s" % (fd, t))
    T.check("%s: descriptors only into its own maildrop, or sockets and "
            "pipes" % what, fds and not bad,
            "others: %s; all: %s" % (bad, fds))
    if strict:
        T.check("%s: stdio is /dev/null" % what,
                all(fds.get(i) == "/dev/null" for i in (0, 1, 2)),
                {i: fds.get(i) for i in (0, 1, 2)})
    elif stdio:
        T.note("%s: fds %s are the master's stdio under -d (the log); "
               "let through" % (what, ", ".join(stdio)))


def check_ids(what, pid, uid, gid):
    ids = T.proc_ids(pid)
    T.check("%s: uids (real, effective, saved, fs) all %d" % (what, uid),
            ids.get("Uid") == [uid] * 4, ids)
    T.check("%s: gids all %d" % (what, gid), ids.get("Gid") == [gid] * 4,
            ids)
    T.check("%s: no supplementary group but its own gid" % what,
            set(ids.get("Groups", [])) <= {gid}, ids.get("Groups"))


def reachable_inodes(root, limit=2000):
    """(dev, ino) of the directories under root (bounded walk)."""
    out = set()
    n = 0
    for d, subdirs, _ in os.walk(root):
        try:
            st = os.stat(d)
            out.add((st.st_dev, st.st_ino))
        except OSError:
            pass
        n += 1
        if n >= limit:
            break
    return out


def sessions(srv):
    """alice and bob logged in; {user: (poplib, mailbox pid)}."""
    out = {}
    for name, _, _ in USERS:
        p = srv.pop3s(name)
        p.stat()
        uid = srv.user(name).uid
        pid = T.wait_for(lambda: next(
            (q for q in srv.mailbox_pids()
             if T.proc_ids(q).get("Uid", [None])[0] == uid), None), 5)
        out[name] = (p, pid)
    return out


# ---------------------------------------------------------------- real pop3d

def test_real(srv):
    srv.deliver("alice", "1700000001.M1P1.test", b"Subject: a\n\nalice\n")
    srv.deliver("bob", "1700000001.M1P1.test", b"Subject: b\n\nbob\n")
    live = {}
    try:
        with T.guard("sessions for the checks"):
            live = sessions(srv)
            T.check("a mailbox process for alice and for bob",
                    all(pid for _, pid in live.values()),
                    {u: pid for u, (_, pid) in live.items()})
        logins = sorted(srv.login_pids())
        T.check("2 login processes", len(logins) == 2, srv.children())

        with T.guard("sandboxes"):
            for i, pid in enumerate(logins):
                check_sandbox("login process %d" % (i + 1), pid)
            for name, (_, pid) in sorted(live.items()):
                if pid:
                    check_sandbox("%s's mailbox process" % name, pid)
            st = H.status(srv.pid)
            if master_filter_built():
                T.check("master: Seccomp: 2 (build/pop3d has "
                        "sandbox_master)", st.get("Seccomp") == "2" and
                        st.get("NoNewPrivs") == "1", st.get("Seccomp"))
            else:
                T.check("master: Seccomp: 0 (no system call filter yet)",
                        st.get("Seccomp") == "0", "Seccomp: %s" %
                        st.get("Seccomp"))
            T.note("master pid %d: Seccomp: %s, NoNewPrivs: %s, "
                   "Seccomp_filters: %s -- %s" %
                   (srv.pid, st.get("Seccomp"), st.get("NoNewPrivs"),
                    st.get("Seccomp_filters"),
                    "the master has a seccomp filter" if
                    st.get("Seccomp") == "2" else
                    "the master has no seccomp filter yet"))

        with T.guard("login process privileges"):
            cst = os.stat(srv.chroot)
            T.check("the chroot dir is root's and not group/other "
                    "writable", cst.st_uid == 0 and
                    not cst.st_mode & 0o022, oct(cst.st_mode))
            for i, pid in enumerate(logins):
                what = "login process %d" % (i + 1)
                T.check("%s: root is the chroot dir" % what,
                        T.proc_root(pid) == srv.chroot, T.proc_root(pid))
                try:
                    inside = os.listdir("/proc/%d/root" % pid)
                except OSError as e:
                    inside = e
                T.check("%s: its root is empty" % what, inside == [],
                        inside)
                check_login_fds(srv, what, pid, strict=False)

        with T.guard("mailbox process privileges"):
            roots = {n: os.path.realpath(srv.user(n).maildir)
                     for n, _, _ in USERS}
            for name, (_, pid) in sorted(live.items()):
                if not pid:
                    continue
                what = "%s's mailbox process" % name
                u = srv.user(name)
                root = roots[name]
                others = [r for n, r in roots.items() if n != name]
                T.check("%s: root is %s's maildrop" % (what, name),
                        T.proc_root(pid) == root, T.proc_root(pid))
                T.check("%s: no other maildrop is under its root" % what,
                        not any(under(o, root) for o in others),
                        (root, others))
                seen = reachable_inodes("/proc/%d/root" % pid)
                oino = set()
                for o in others:
                    st = os.stat(o)
                    oino.add((st.st_dev, st.st_ino))
                T.check("%s: no directory reachable from its root is "
                        "another user's maildrop" % what,
                        seen and not (seen & oino),
                        "%d dirs seen" % len(seen))
                check_ids(what, pid, u.uid, u.gid)
                check_mailbox_fds(srv, what, pid, root, others,
                                  strict=False)
    finally:
        for p, _ in live.values():
            try:
                p.quit()
            except Exception:               # noqa: BLE001 - closing
                pass
    T.check("mailbox processes gone after QUIT", srv.wait_sessions_done(),
            srv.mailbox_pids())


# ---------------------------------------------------------------- daemonized

class PidProc:
    """Enough of subprocess.Popen for the harness to stop a daemonized
    master it did not fork itself."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None and not H.alive(self.pid):
            self.returncode = 0
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout=None):
        if not T.wait_for(lambda: self.poll() is not None,
                          timeout if timeout is not None else 30):
            raise subprocess.TimeoutExpired("pop3d", timeout)
        return self.returncode


class DaemonServer(T.Server):
    """pop3d without -d: it daemonizes (stdio to /dev/null, logs to
    syslog, so the log file stays empty)."""

    def _start(self):
        self.logf = open(self.log, "wb")
        cmd = [os.path.join(T.BUILD, "pop3d"), "-v", "-x", T.BUILD,
               "-f", self.conf]
        parent = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                  stdout=self.logf, stderr=self.logf,
                                  cwd=self.tmp)
        rc = parent.wait(timeout=20)
        if rc != 0:
            raise RuntimeError("pop3d (no -d) exited with %s" % rc)
        exe = os.path.join(T.BUILD, "pop3d")

        def find():
            for p in T.all_pids():
                if T.proc_exe(p) != exe:
                    continue
                cmdl = T._read("/proc/%d/cmdline" % p, binary=True) or b""
                if self.conf.encode() in cmdl.split(b"\0"):
                    return p
            return None
        pid = T.wait_for(find, 5)
        if not pid:
            raise RuntimeError("daemonized pop3d not found")
        self.proc = PidProc(pid)
        self.pid = pid

        def greets():
            try:
                return O.greeting(self.port).startswith(b"+OK")
            except (OSError, EOFError, ValueError):
                return False
        if not T.wait_for(greets, 10, step=0.1):
            raise RuntimeError("daemonized pop3d gives no greeting")
        self.seen.update(T.descendants(self.pid))
        self.started = True


def test_daemon():
    with DaemonServer(users=USERS, login_procs=1) as srv:
        srv.deliver("alice", "1700000001.M1P1.test", b"Subject: a\n\na\n")
        T.check("daemonized master: stdio is /dev/null",
                all(H.fd_targets(srv.pid).get(i) == "/dev/null"
                    for i in (0, 1, 2)), H.fd_targets(srv.pid))
        live = {}
        try:
            with T.guard("daemonized: descriptors"):
                p = srv.pop3s("alice")
                p.stat()
                uid = srv.user("alice").uid
                mpid = T.wait_for(lambda: next(
                    (q for q in srv.mailbox_pids()
                     if T.proc_ids(q).get("Uid", [None])[0] == uid),
                    None), 5)
                live["alice"] = p
                logins = srv.login_pids()
                T.check("daemonized: one login process", len(logins) == 1,
                        srv.children())
                for pid in logins:
                    check_sandbox("daemonized login process", pid)
                    check_login_fds(srv, "daemonized login process", pid,
                                    strict=True)
                T.check("daemonized: alice's mailbox process found",
                        mpid, srv.children())
                if mpid:
                    root = os.path.realpath(srv.user("alice").maildir)
                    other = os.path.realpath(srv.user("bob").maildir)
                    check_sandbox("daemonized mailbox process", mpid)
                    check_mailbox_fds(srv, "daemonized mailbox process",
                                      mpid, root, [other], strict=True)
        finally:
            for p in live.values():
                try:
                    p.quit()
                except Exception:           # noqa: BLE001
                    pass
        srv.wait_sessions_done()


# ---------------------------------------------------------------- fake login

CONSTS_C = r"""
#include <stddef.h>
#include <stdio.h>
#include "imsg.h"
#include "proto.h"

#define I(x)	printf("\"%s\": %lu,\n", #x, (unsigned long)(x))

int
main(void)
{
	printf("{\n");
	I(IMSG_LOGIN_READY);
	I(IMSG_AUTH_REQUEST);
	I(IMSG_AUTH_RESULT);
	I(IMSG_MAILBOX_DONE);
	I(IMSG_MAX);
	I(IMSG_MAXSIZE);
	I(IMSG_HEADER_SIZE);
	I(IMSGF_HASFD);
	I(AUTH_REQ_TLS);
	I(AUTH_MECH_PASSWORD);
	I(AUTH_OK);
	I(sizeof(struct auth_request));
	I(sizeof(struct auth_result));
	I(sizeof(struct mailbox_done));
	I(offsetof(struct auth_request, conn));
	I(offsetof(struct auth_request, flags));
	I(offsetof(struct auth_request, mech));
	I(offsetof(struct auth_request, failures));
	I(offsetof(struct auth_request, user));
	I(offsetof(struct auth_request, pass));
	I(offsetof(struct auth_request, peer));
	I(offsetof(struct auth_result, conn));
	I(offsetof(struct auth_result, status));
	printf("\"end\": 0\n}\n");
	return 0;
}
"""


def imsg_consts(workdir):
    """The protocol's numbers and sizes, from the headers themselves."""
    src = os.path.join(workdir, "consts.c")
    exe = os.path.join(workdir, "consts")
    with open(src, "w") as f:
        f.write(CONSTS_C)
    cc = os.environ.get("CC", "cc")
    r = O.run([cc, "-I", os.path.join(T.REPO, "common"), "-o", exe, src],
              timeout=60)
    if r.rc != 0:
        raise RuntimeError("compiling consts.c: %r" % r)
    r = O.run([exe], timeout=10)
    if r.rc != 0:
        raise RuntimeError("consts: %r" % r)
    c = json.loads(r.out)
    return {k.replace("sizeof(struct ", "sizeof_").replace(
        "offsetof(struct ", "off_").replace(", ", ".").rstrip(")"): v
            for k, v in c.items()}


FAKE = r'''#!/usr/bin/env python3
"""A fake pop3d-login written by test_privsep.py: reads the master's
configuration from fd 3, then sends the imsg of its case (by start
number) and waits to be killed."""
import array, fcntl, json, os, socket, struct, sys, time

C = json.loads(%(consts)r)
CASES = json.loads(%(cases)r)
PIDS = %(pids)r
RESULTS = %(results)r
MARKER = %(marker)r
USER, PASSWORD = %(user)r, %(password)r


def timeouts(s, seconds=10):
    """Bounded blocking I/O by SO_RCVTIMEO/SO_SNDTIMEO: settimeout() would
    ioctl(FIONBIO), which a master's seccomp filter, inherited by its
    children until they install their own, may refuse."""
    tv = struct.pack("@ll", seconds, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def hdr(typ, ln, flags=0):
    return struct.pack("=5I", typ, ln, flags, 0, os.getpid())


def auth_request(user, password):
    b = bytearray(C["sizeof_auth_request"])
    def put32(off, v):
        b[off:off + 4] = struct.pack("=I", v)
    def puts(off, s):
        b[off:off + len(s)] = s
    put32(C["off_auth_request.conn"], 7)
    put32(C["off_auth_request.flags"], C["AUTH_REQ_TLS"])
    put32(C["off_auth_request.mech"], C["AUTH_MECH_PASSWORD"])
    put32(C["off_auth_request.failures"], 0)
    puts(C["off_auth_request.user"], user.encode())
    puts(C["off_auth_request.pass"], password.encode())
    puts(C["off_auth_request.peer"], b"127.0.0.1:40000")
    return bytes(b)


def record(**kw):
    kw["pid"] = os.getpid()
    with open(RESULTS, "a") as f:
        f.write(json.dumps(kw) + "\n")


def recv_msg(ch, buf):
    """(type, data, [fds], rest of buf)."""
    fds = []
    while True:
        if len(buf) >= 20:
            t, ln = struct.unpack("=2I", buf[:8])
            if len(buf) >= ln:
                return t, buf[20:ln], fds, buf[ln:]
        data, anc, _, _ = ch.recvmsg(1 << 17, socket.CMSG_SPACE(64 * 4))
        for lvl, typ, cd in anc:
            if lvl == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(cd[:len(cd) - len(cd) %% a.itemsize])
                fds.extend(a)
        if not data:
            raise EOFError("channel closed")
        buf += data


def main():
    with open(PIDS, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        k = len(f.read().split())
        f.write("%%d\n" %% os.getpid())
        f.flush()
    ch = socket.socket(fileno=3)
    timeouts(ch)
    buf = b""
    ntypes = []
    while True:
        t, data, fds, buf = recv_msg(ch, buf)
        ntypes.append(t)
        if t == C["IMSG_LOGIN_READY"]:
            break
    case = CASES[k] if k < len(CASES) else "good"
    size = C["sizeof_auth_request"]
    H = C["IMSG_HEADER_SIZE"]
    A = C["IMSG_AUTH_REQUEST"]
    record(case=case, start=k, config=ntypes)
    if case == "short":
        ch.sendall(hdr(A, H + size - 1) + b"\0" * (size - 1))
    elif case == "long":
        ch.sendall(hdr(A, H + size + 1) + b"\0" * (size + 1))
    elif case == "unknown type":
        ch.sendall(hdr(C["IMSG_MAX"] + 100, H + 4) + b"\0" * 4)
    elif case == "wrong direction":
        n = C["sizeof_auth_result"]
        ch.sendall(hdr(C["IMSG_AUTH_RESULT"], H + n) + b"\0" * n)
    elif case == "beyond max":
        ch.sendall(hdr(A, C["IMSG_MAXSIZE"] + 1) + b"\0" * 64)
    elif case == "below header":
        ch.sendall(hdr(A, H - 12) + b"\0" * 64)
    elif case == "descriptor":
        fd = os.open("/dev/null", os.O_RDONLY)
        msg = hdr(A, H + size, C["IMSGF_HASFD"]) + auth_request("x", "y")
        ch.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                            array.array("i", [fd]).tobytes())])
        os.close(fd)
    elif case == "unflagged descriptor":
        fd = os.open(MARKER, os.O_RDONLY)
        msg = hdr(A, H + size, 0) + auth_request("x", "y")
        ch.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                            array.array("i", [fd]).tobytes())])
        os.close(fd)
        record(case="unflagged sent")
    elif case == "good":
        ch.sendall(hdr(A, H + size) + auth_request(USER, PASSWORD))
        try:
            t, data, fds, buf = recv_msg(ch, buf)
            res = {"type": t, "len": len(data), "fds": len(fds)}
            if len(data) >= 8:
                res["conn"], res["status"] = struct.unpack(
                    "=2I", data[C["off_auth_result.conn"]:
                                C["off_auth_result.conn"] + 8])
            if fds:
                s = socket.socket(fileno=fds[0])
                timeouts(s)
                f = s.makefile("rb")
                res["greeting"] = f.readline().decode(errors="replace")
                s.sendall(b"STAT\r\n")
                res["stat"] = f.readline().decode(errors="replace")
                s.sendall(b"QUIT\r\n")
                res["quit"] = f.readline().decode(errors="replace")
            record(case="good result", **res)
        except Exception as e:
            record(case="good result", error="%%s: %%s" %% (
                type(e).__name__, e))
    # Wait for the master's SIGTERM (the default action ends us).
    end = time.monotonic() + 60
    while time.monotonic() < end:
        time.sleep(0.2)


try:
    main()
except Exception as e:
    record(case="exception", error="%%s: %%s" %% (type(e).__name__, e))
    time.sleep(30)
'''

# (case, what the master must log about the process).
CASES = [
    ("short", r"bad IMSG_AUTH_REQUEST size"),
    ("long", r"bad IMSG_AUTH_REQUEST size"),
    ("unknown type", r"unexpected message"),
    ("wrong direction", r"unexpected message"),
    ("beyond max", r"malformed message"),
    ("below header", r"malformed message"),
    ("descriptor", r"unexpected descriptor"),
    # A descriptor with a message that does not say it has one.
    ("unflagged descriptor", r"(unexpected descriptor|malformed message|"
                             r"channel closed)"),
]


class FakeServer(T.Server):
    """pop3d whose login program is a fake: no greeting to wait for;
    up once the first fake has written its pid."""

    def __init__(self, pids, **kw):
        self.pids_file = pids
        super().__init__(**kw)

    def _start(self):
        self.logf = open(self.log, "wb")
        cmd = [os.path.join(T.BUILD, "pop3d"), "-d", "-v", "-x", T.BUILD,
               "-f", self.conf] + self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf,
                                     cwd=self.tmp)
        self.pid = self.proc.pid
        T.wait_for(lambda: self.proc.poll() is not None or
                   len(read_pids(self.pids_file)) >= 1, 10)
        if self.proc.poll() is not None:
            raise RuntimeError("pop3d exited with %s at start" %
                               self.proc.returncode)
        self.seen.update(T.descendants(self.pid))
        self.started = True


def read_pids(path):
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def read_results(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def test_fake_login():
    work = tempfile.mkdtemp(prefix="pop3d-fake-")
    pids_file = os.path.join(work, "pids")
    results = os.path.join(work, "results")
    marker = os.path.join(work, "fd-passed-by-the-fake")
    fakes = []
    try:
        consts = imsg_consts(work)
        T.note("from common/imsg.h and proto.h: IMSG_AUTH_REQUEST %d, "
               "sizeof(struct auth_request) %d, IMSG_HEADER_SIZE %d, "
               "IMSG_MAXSIZE %d" % (consts["IMSG_AUTH_REQUEST"],
                                    consts["sizeof_auth_request"],
                                    consts["IMSG_HEADER_SIZE"],
                                    consts["IMSG_MAXSIZE"]))
        libexec = os.path.join(work, "libexec")
        os.mkdir(libexec, 0o755)
        os.symlink(os.path.join(T.BUILD, "pop3d-mailbox"),
                   os.path.join(libexec, "pop3d-mailbox"))
        fake = os.path.join(libexec, "pop3d-login")
        with open(fake, "w") as f:
            f.write(FAKE % {
                "consts": json.dumps(consts),
                "cases": json.dumps([c for c, _ in CASES]),
                "pids": pids_file, "results": results, "marker": marker,
                "user": USERS[0][0], "password": USERS[0][1]})
        os.chmod(fake, 0o755)
        open(pids_file, "w").close()
        open(marker, "w").close()

        with FakeServer(pids_file, users=USERS, login_procs=1,
                        control=True, args=["-x", libexec]) as srv:
            srv.deliver("alice", "1700000001.M1P1.test",
                        b"Subject: a\n\nalice\n")
            t_gone = None
            for k, (case, reason) in enumerate(CASES):
                with T.guard("fake login, %s" % case):
                    t0 = time.monotonic()
                    got = T.wait_for(lambda: len(read_pids(pids_file)) >
                                     k, 5)
                    pids = read_pids(pids_file)
                    if t_gone is not None:
                        took = time.monotonic() - t_gone
                        T.check("before the %s imsg: the master started "
                                "a new login process (%.1fs < 3s)" %
                                (case, took), got and took < 3,
                                "starts so far: %s" % pids)
                    if not got:
                        break
                    pid = pids[k]
                    fakes.append(pid)
                    pat = r"login process %d: %s" % (pid, reason)
                    m = O.wait_log(srv, pat, timeout=3)
                    T.check("%s imsg: master logs '%s'" % (case, reason),
                            m, "no line matching %r; fake's record: %s" %
                            (pat, [r for r in read_results(results)
                                   if r.get("pid") == pid]))
                    kept = [fd for fd, t in H.fd_targets(srv.pid).items()
                            if t == marker]
                    if kept:
                        T.note("%s: the master holds the passed "
                               "descriptor as its fd %s" % (case, kept))
                    if not m:
                        T.note("%s: the master's last words: %s" % (
                            case, " | ".join(
                                [l for l in O.log_text(srv).splitlines()
                                 if "master:" in l][-3:])))
                    if case in ("unknown type", "wrong direction"):
                        T.check("%s imsg: master logs 'unexpected imsg "
                                "N'" % case, O.wait_log(
                                    srv, r"login process %d: unexpected "
                                    r"imsg \d+" % pid, timeout=1), "")
                    gone = T.wait_for(lambda: not H.alive(pid), 2)
                    T.check("%s imsg: the master ends that login process"
                            % case, gone, "pid %d still running" % pid)
                    if not gone:
                        # The fake is ours: end it so the sequence goes on.
                        os.kill(pid, signal.SIGTERM)
                        T.wait_for(lambda: not H.alive(pid), 5)
                    t_gone = time.monotonic()
                    T.check("%s imsg: master still running" % case,
                            srv.alive(), "")
                    T.note("%s: handled in %.2fs" %
                           (case, time.monotonic() - t0))

            with T.guard("fake login, a well-formed request"):
                n = len(CASES)
                got = T.wait_for(lambda: len(read_pids(pids_file)) > n, 5)
                T.check("after %d bad ones, a new login process starts" %
                        n, got, read_pids(pids_file))
                res = T.wait_for(lambda: next(
                    (r for r in read_results(results)
                     if r.get("case") == "good result"), None), 15)
                T.check("well-formed IMSG_AUTH_REQUEST from the fake: "
                        "AUTH_OK with the session's descriptor",
                        res and res.get("type") ==
                        consts["IMSG_AUTH_RESULT"] and
                        res.get("status") == consts["AUTH_OK"] and
                        res.get("fds") == 1, res)
                T.check("... and the mailbox process answers +OK, STAT, "
                        "QUIT", res and
                        res.get("greeting", "").startswith("+OK") and
                        res.get("stat", "").startswith("+OK 1 ") and
                        res.get("quit", "").startswith("+OK"), res)
                fakes.extend(read_pids(pids_file)[n:])

            with T.guard("fake login, master still serves"):
                r = O.ctl(srv, "show", "stats")
                st = O.parse_stats(r.out)
                T.check("pop3ctl show stats answers after the bad imsgs",
                        r.rc == 0 and st is not None, r)
                T.check("the master is still running", srv.alive(), "")
                text = O.log_text(srv)
                T.check("no login process counted as failing at set-up",
                        "fail during set-up" not in text, "")
            srv.wait_sessions_done()
        left = [p for p in read_pids(pids_file) if H.alive(p)]
        T.check("no fake login process left after pop3d stops",
                not left, left)
    finally:
        for p in read_pids(pids_file):
            if H.alive(p) and "pop3d-login" in (
                    T._read("/proc/%d/cmdline" % p) or ""):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(work, ignore_errors=True)


def main():
    with T.Server(users=USERS, login_procs=2) as srv:
        test_real(srv)
        T.check("server still running", srv.alive(), "")
    with T.guard("daemonized pop3d"):
        test_daemon()
    test_fake_login()


T.run(main)
