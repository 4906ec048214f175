"""
hardenlib: helpers for the hardening tests of issue 7 (test_privsep.py,
test_faults.py, test_load.py): /proc views of the daemons' descriptors,
TCP sockets and sandbox state, clients bound to other loopback source
addresses, and the first bytes of a TLS handshake.

Nothing here starts or ends a process.
"""

import contextlib
import os
import resource
import signal
import socket
import ssl
import stat
import time

import pop3dtest as T


# ---------------------------------------------------------------- /proc

def status(pid):
    """/proc/PID/status as {field: value string}, {} if gone."""
    out = {}
    for line in (T._read("/proc/%d/status" % pid) or "").splitlines():
        key, _, val = line.partition(":")
        out[key] = val.strip()
    return out


def fd_targets(pid):
    """{fd number: readlink of /proc/PID/fd/N}; fds that vanish while
    read are left out."""
    out = {}
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for n in names:
        try:
            out[int(n)] = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except OSError:
            pass
    return out


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def fd_stat(pid, fd):
    """os.stat of what /proc/PID/fd/N refers to, or None."""
    try:
        return os.stat("/proc/%d/fd/%d" % (pid, fd))
    except OSError:
        return None


def is_regular(pid, fd):
    st = fd_stat(pid, fd)
    return st is not None and stat.S_ISREG(st.st_mode)


def same_file(pid1, fd1, pid2, fd2):
    a, b = fd_stat(pid1, fd1), fd_stat(pid2, fd2)
    return (a is not None and b is not None and
            (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))


def socket_inodes(pid):
    """{inode: [fd, ...]} of the sockets pid holds."""
    out = {}
    for fd, t in fd_targets(pid).items():
        if t.startswith("socket:["):
            out.setdefault(int(t[8:-1]), []).append(fd)
    return out


def _hexaddr(s):
    """'0100007F:1F90' of /proc/net/tcp -> ('127.0.0.1', 8080)."""
    a, p = s.split(":")
    ip = socket.inet_ntop(socket.AF_INET, bytes.fromhex(a)[::-1])
    return ip, int(p, 16)


TCP_ESTABLISHED = 0x01
TCP_LISTEN = 0x0A


def tcp_table():
    """{inode: (local (ip, port), remote (ip, port), state)} of the IPv4
    TCP sockets of this network namespace."""
    out = {}
    text = T._read("/proc/net/tcp") or ""
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        inode = int(f[9])
        if inode == 0:
            continue            # TIME_WAIT and the like: nobody's
        out[inode] = (_hexaddr(f[1]), _hexaddr(f[2]), int(f[3], 16))
    return out


def client_conns(pid, port, table=None):
    """[(remote ip, remote port)] of the connected TCP sockets pid holds
    whose local port is port (the server's side of its clients)."""
    table = tcp_table() if table is None else table
    out = []
    for inode, fds in socket_inodes(pid).items():
        e = table.get(inode)
        if e is None or e[2] == TCP_LISTEN or e[0][1] != port:
            continue
        out.extend([e[1]] * len(fds))
    return out


def holder(pids, client_addr, port):
    """Which of pids holds the server side of the client socket bound at
    client_addr (ip, port), or None."""
    table = tcp_table()
    for p in pids:
        if tuple(client_addr) in client_conns(p, port, table):
            return p
    return None


def alive(pid):
    st = T._read("/proc/%d/stat" % pid)
    if st is None:
        return False
    return st[st.rindex(")") + 2:].split()[0] not in ("Z", "X")


def proc_state(pid):
    st = T._read("/proc/%d/stat" % pid)
    return st[st.rindex(")") + 2:].split()[0] if st else None


@contextlib.contextmanager
def paused(pids):
    """SIGSTOP pids for the block (SIGCONT after, whatever happens): with
    the other login processes stopped, the one left accepts every new
    connection, which puts a client on a chosen login process."""
    stopped = []
    try:
        for p in pids:
            os.kill(p, signal.SIGSTOP)
            stopped.append(p)
        T.wait_for(lambda: all(proc_state(p) in ("T", "t", None)
                               for p in pids), 2)
        yield
    finally:
        for p in stopped:
            try:
                os.kill(p, signal.SIGCONT)
            except OSError:
                pass


# ---------------------------------------------------------------- clients

def raise_nofile(want=8192):
    """Raise this process' descriptor limit towards want; the new soft
    limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


def connect_from(src, port, timeout=T.TIMEOUT):
    """A TCP socket from loopback address src to 127.0.0.1:port (Linux
    routes all of 127/8 to lo)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.bind((src, 0))
        s.connect((T.HOST, port))
    except BaseException:
        s.close()
        raise
    return s


def insecure_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_from(srv, src, timeout=T.TIMEOUT):
    """A TLS RawConn from src, handshake done, greeting not read."""
    s = connect_from(src, srv.port, timeout)
    try:
        s = srv.context().wrap_socket(s, server_hostname=T.HOST)
    except BaseException:
        s.close()
        raise
    return T.RawConn(s)


def client_hello():
    """The bytes of a real TLS ClientHello (a fresh one each call)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = insecure_context().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def closed_now(sock, timeout=0.0):
    """True if the peer has closed or reset sock (pending data is read
    and dropped), False if it is open; waits at most timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        left = max(0.0, end - time.monotonic())
        sock.settimeout(left if left > 0 else 0.0)
        try:
            data = sock.recv(65536)
            if not data:
                return True
            continue
        except (BlockingIOError, socket.timeout, TimeoutError,
                ssl.SSLWantReadError):
            if time.monotonic() >= end:
                return False
        except (ssl.SSLError, OSError):
            return True


def linger_close(sock):
    """Close with a RST (SO_LINGER 0): no TIME_WAIT left behind."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    sock.close()


def wait_fds_back(pids, base, slack=2, timeout=10):
    """Wait until each pid holds at most base[pid] + slack descriptors;
    {pid: count now}."""
    def now():
        return {p: fd_count(p) for p in pids}

    def ok():
        n = now()
        return all(n[p] is not None and n[p] <= base[p] + slack
                   for p in pids)
    T.wait_for(ok, timeout, step=0.1)
    return now()
