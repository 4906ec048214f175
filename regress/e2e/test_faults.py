"""Faults (issue 7, "Hardening"), with several live sessions over TLS:

- kill -9 of a login process in the middle of a client's TLS handshake
  (login-processes 2): the handshaking client and the sessions that
  process relayed see EOF and their mailbox processes end; the master
  starts a new login process within ~2s, which serves new logins; the
  sessions of the other login process go on.
- kill -9 of a mailbox process in the middle of RETR of a 20 MiB message:
  that client sees EOF before the end of the message, other sessions go
  on, the maildrop keeps every message, the lock is gone (the user logs in
  again at once and sees the same messages with the same UIDLs).
- a full disk: the maildrop on a 2 MiB tmpfs nearly filled, no index yet,
  so the first login cannot write one: -ERR [SYS/TEMP], nothing lost, and
  a login works once there is room.

(kill -9 in UPDATE is test_crash.py's.)"""

import base64
import errno
import hashlib
import os
import random
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import maildroplib as M  # noqa: E402
import opslib as O  # noqa: E402
import hardenlib as H  # noqa: E402

SMALL = ["alice", "bob", "carol", "dave", "erin", "frank"]
USERS = [(u, u + "-pw", "sha512") for u in SMALL + ["big", "full"]]
BIG_SIZE = 20 * 1024 * 1024


def small_msgs(user):
    return [b"Subject: %s %d\n\n%s's message %d\n" %
            (user.encode(), i, user.encode(), i) for i in (1, 2)]


def deliver_small(srv):
    for u in SMALL:
        for i, m in enumerate(small_msgs(u)):
            srv.deliver(u, "17000000%02d.M%dP1.test" % (i + 1, i + 1), m)


def want_stat(user):
    msgs = small_msgs(user)
    return b"+OK %d %d" % (len(msgs), sum(len(T.expected(m))
                                          for m in msgs))


def mailbox_of(srv, user):
    uid = srv.user(user).uid
    for p in srv.mailbox_pids():
        if T.proc_ids(p).get("Uid", [None])[0] == uid:
            return p
    return None


def session_ok(p, user):
    """STAT and RETR 1 on a live poplib session; (ok, detail)."""
    try:
        st = p.stat()
        want = want_stat(user).split()
        if [str(x).encode() for x in st] != want[1:]:
            return False, "STAT %s, want %s" % (st, want)
        _, lines, _ = p.retr(1)
        if T.joined(lines) != T.expected(small_msgs(user)[0]):
            return False, "RETR 1 differs"
        return True, ""
    except Exception as e:                  # noqa: BLE001 - the detail
        return False, "%s: %s" % (type(e).__name__, e)


def close_quietly(p):
    try:
        p.quit()
    except Exception:                       # noqa: BLE001
        try:
            p.close()
        except Exception:                   # noqa: BLE001
            pass


def retr_raw(c, n, limit=64 * 1024 * 1024, timeout=60):
    """The raw reply body of RETR n on a RawConn, up to and with the
    terminating line, read in bulk (a line at a time is too slow for
    20 MiB)."""
    r = c.cmd(b"RETR %d\r\n" % n)
    if not r.startswith(b"+OK"):
        raise RuntimeError("RETR %d: %r" % (n, r))
    parts = [c.buf]
    c.buf = b""
    total = len(parts[0])
    tail = parts[0][-5:]
    end = time.monotonic() + timeout
    while not (tail.endswith(b"\r\n.\r\n") or
               (total == 3 and tail == b".\r\n")):
        if time.monotonic() > end or total > limit:
            raise RuntimeError("RETR %d: no end after %d bytes" %
                               (n, total))
        data = c.sock.recv(1 << 20)
        if not data:
            raise EOFError("EOF after %d bytes of RETR %d" % (total, n))
        parts.append(data)
        total += len(data)
        tail = (tail + data)[-5:]
    return b"".join(parts)


# ---------------------------------------------------------------- login kill

def test_login_kill(srv):
    logins = sorted(T.wait_for(lambda: len(srv.login_pids()) == 2 and
                               srv.login_pids(), 5) or srv.login_pids())
    T.check("2 login processes", len(logins) == 2, srv.children())
    if len(logins) != 2:
        return
    live = {}       # user -> poplib
    owner = {}      # user -> login pid
    victim, other = logins
    hs = None
    try:
        # Three sessions on each login process: with one stopped, the
        # other accepts every connection.
        for target, users in ((victim, SMALL[:3]), (other, SMALL[3:])):
            with H.paused([p for p in logins if p != target]):
                for u in users:
                    p = srv.pop3s(u)
                    live[u] = p
                    owner[u] = H.holder(logins, p.sock.getsockname(),
                                        srv.port)
            for u in users:
                live[u].stat()
        T.note("sessions by login process: %s" % owner)
        T.check("three sessions on each login process",
                sorted(owner.values()) == sorted([victim] * 3 +
                                                 [other] * 3), owner)

        hello = H.client_hello()
        with H.paused([other]):
            hs = socket.create_connection((T.HOST, srv.port), timeout=5)
            hs.sendall(hello[:len(hello) // 2])
            held = T.wait_for(lambda: H.holder(logins, hs.getsockname(),
                                               srv.port), 3)
        T.check("the half-done TLS handshake is held by login process %d"
                % victim, held == victim, "held by %s" % held)
        hit = [u for u, p in owner.items() if p == victim]
        spared = [u for u, p in owner.items() if p == other]
        hit_uids = {srv.user(u).uid for u in hit}

        mark = O.log_size(srv)
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)

        T.check("kill -9 of the login process: the handshaking client "
                "sees EOF", H.closed_now(hs, 3), "still open after 3s")
        for u in hit:
            T.check("kill -9 of the login process: %s's session (relayed "
                    "by it) sees EOF" % u, H.closed_now(live[u].sock, 3),
                    "still open after 3s")
        new = T.wait_for(lambda: [p for p in srv.login_pids()
                                  if p not in logins], 5)
        took = time.monotonic() - t0
        T.check("a new login process within ~2s (%.1fs)" % took,
                new and took < 3, "login pids now %s" % srv.login_pids())
        T.check("the master logs the death of login process %d" % victim,
                O.wait_log(srv, r"login process %d died of signal 9" %
                           victim, start=mark, timeout=2), "")
        gone = T.wait_for(lambda: not [
            p for p in srv.mailbox_pids()
            if T.proc_ids(p).get("Uid", [None])[0] in hit_uids], 5)
        T.check("the mailbox processes of the killed login process's "
                "sessions end", gone, srv.children())
        for u in spared:
            ok, why = session_ok(live[u], u)
            T.check("%s's session on the other login process goes on "
                    "(STAT, RETR)" % u, ok, why)
        T.check("master still running, same PID", srv.alive() and
                T.proc_ppid(other) == srv.pid, "")

        if new:
            u = hit[0]
            served = None
            try:
                with H.paused([other]):
                    served = srv.pop3s()
                    held = H.holder(new, served.sock.getsockname(),
                                    srv.port)
                T.check("the new login process accepts a connection",
                        held == new[0], "held by %s" % held)
                served.user(u)
                served.pass_(u + "-pw")
                st = served.stat()
                ok = b"+OK %d %d" % st == want_stat(u)
            except Exception as e:          # noqa: BLE001
                ok, st = False, "%s: %s" % (type(e).__name__, e)
            T.check("a login through the new login process (%s, whose "
                    "last session died with the old one)" % u, ok, st)
            if served is not None:
                close_quietly(served)
        for u in hit:
            r = O.login_reply(srv, u, u + "-pw")
            T.check("%s logs in again over a new connection" % u,
                    r.startswith(b"+OK"), r)
        for u in spared:
            ok, why = session_ok(live[u], u)
            T.check("%s's session still goes on after the restart" % u,
                    ok, why)
    finally:
        if hs is not None:
            hs.close()
        for p in live.values():
            close_quietly(p)
    srv.wait_sessions_done()
    T.check("after the login process kill: every maildrop keeps its mail",
            all(len(srv.messages(u)) == 2 for u in SMALL),
            {u: srv.messages(u) for u in SMALL})


# ---------------------------------------------------------------- mailbox kill

def big_message():
    """~20 MiB of CRLF base64 lines: the wire form is the file itself
    and '.\\r\\n' (no line starts with a dot)."""
    raw = random.Random(1939).randbytes(BIG_SIZE * 3 // 4)
    body = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    return b"Subject: twenty mebibytes\r\n\r\n" + body


def test_mailbox_kill(srv):
    big = big_message()
    srv.deliver("big", "1700000001.M1P1.test", b"Subject: s1\n\none\n")
    srv.deliver("big", "1700000002.M2P1.test", big)
    srv.deliver("big", "1700000003.M3P1.test", b"Subject: s3\n\nthree\n")
    live = {}
    c = None
    try:
        for u in ("alice", "bob", "carol"):
            p = srv.pop3s(u)
            p.stat()
            live[u] = p
        c, r = M.login_raw(srv, "big")
        T.check("big logs in", r.startswith(b"+OK"), r)
        uidl0 = M.uidl_map(c)
        r = c.cmd(b"LIST\r\n")
        sizes0 = {int(a): int(b) for a, b in
                  (l.split() for l in c.multiline().split(b"\r\n")
                   if l and l != b".")}
        n = max(sizes0, key=sizes0.get)
        T.check("LIST shows the 20 MiB message at its size",
                sizes0[n] == len(big), (sizes0, len(big)))
        files0 = srv.messages("big")
        mpid = mailbox_of(srv, "big")

        r = c.cmd(b"RETR %d\r\n" % n)
        T.check("RETR of the 20 MiB message starts", r.startswith(b"+OK"),
                r)
        got = len(c.buf)
        c.buf = b""
        c.sock.settimeout(10)
        while got < 256 * 1024:
            d = c.sock.recv(65536)
            if not d:
                break
            got += len(d)
        mark = O.log_size(srv)
        os.kill(mpid, signal.SIGKILL)
        eof, err = False, None
        end = time.monotonic() + 20
        while time.monotonic() < end and got < 2 * BIG_SIZE:
            try:
                d = c.sock.recv(1 << 20)
            except (OSError, ValueError) as e:
                eof, err = True, e
                break
            if not d:
                eof = True
                break
            got += len(d)
        T.check("kill -9 of the mailbox process mid-RETR: the client sees "
                "EOF", eof, "%d bytes, no EOF after 20s" % got)
        T.check("... before the end of the message (%d of %d bytes)" %
                (got, len(big) + 3), got < len(big) + 3, got)
        if err is not None:
            T.note("the end came as %s: %s" % (type(err).__name__, err))
        c.close()
        c = None
        T.check("the master logs the mailbox process's death",
                O.wait_log(srv, r"mailbox process %d died of signal 9" %
                           mpid, start=mark, timeout=5), "")
        T.check("the killed session's mailbox process is gone",
                T.wait_for(lambda: not H.alive(mpid), 5), mpid)
        for u, p in live.items():
            ok, why = session_ok(p, u)
            T.check("%s's session goes on after the kill" % u, ok, why)
        T.check("the maildrop still has every message (none deleted)",
                srv.messages("big") == files0, (srv.messages("big"),
                                                 files0))
        T.check("master still running", srv.alive(), "")

        c, r = M.login_raw(srv, "big")
        T.check("the lock is gone: big logs in again at once",
                r.startswith(b"+OK"), r)
        if r.startswith(b"+OK"):
            T.check("same messages with the same UIDLs",
                    M.uidl_map(c) == uidl0, (M.uidl_map(c), uidl0))
            c.cmd(b"LIST\r\n")
            sizes = {int(a): int(b) for a, b in
                     (l.split() for l in c.multiline().split(b"\r\n")
                      if l and l != b".")}
            T.check("same message sizes", sizes == sizes0,
                    (sizes, sizes0))
            body = retr_raw(c, n)
            T.check("the 20 MiB message is intact (RETR in full)",
                    body == big + b".\r\n",
                    "%d bytes, sha256 %s, want %d %s" %
                    (len(body), hashlib.sha256(body).hexdigest()[:16],
                     len(big) + 3,
                     hashlib.sha256(big + b".\r\n").hexdigest()[:16]))
            r = c.cmd(b"QUIT\r\n")
            T.check("QUIT", r.startswith(b"+OK"), r)
    finally:
        if c is not None:
            c.close()
        for p in live.values():
            close_quietly(p)
    srv.wait_sessions_done()


# ---------------------------------------------------------------- full disk

def umount(path):
    """Unmount path (waiting a little for busy users); True if done."""
    for _ in range(20):
        r = O.run(["umount", path], timeout=20)
        if r.rc == 0:
            return True
        time.sleep(0.25)
    r = O.run(["umount", "-l", path], timeout=20)
    T.note("umount %s needed -l: %s" % (path, r))
    return r.rc == 0


def fill(path):
    """Append to path until the file system is full; its size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    size = 0
    try:
        chunk = b"\0" * 65536
        while len(chunk) >= 4096:
            try:
                size += os.write(fd, chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                chunk = chunk[:len(chunk) // 2]
    finally:
        os.close(fd)
    return size


def read_mail(maildir):
    """{base name: bytes} of the messages in new/ and cur/."""
    out = {}
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                out[name.split(":")[0]] = f.read()
    return out


def test_full_disk(srv):
    u = srv.user("full")
    home = os.path.dirname(u.maildir)
    mounted = False
    try:
        r = O.run(["mount", "-t", "tmpfs", "-o",
                   "size=2m,mode=0755,uid=%d,gid=%d" % (u.uid, u.gid),
                   "pop3d-test-full", home], timeout=20)
        mounted = r.rc == 0
        T.check("a 2 MiB tmpfs for full's maildrop", mounted, r)
        if not mounted:
            return
        O.make_maildir(home, u.uid, u.gid)
        msgs = {}
        rnd = random.Random(7)
        for i in range(6):
            name = "17000000%02d.M%dP1.test" % (i + 1, i + 1)
            data = (b"Subject: filler %d\n\n" % i +
                    base64.encodebytes(rnd.randbytes(190 * 1024)))
            srv.deliver("full", name, data)
            msgs[name] = data
        filler = os.path.join(home, "filler")
        want_mail = {n.split(":")[0]: d for n, d in msgs.items()}
        # Nearly full (one page left), then full to the last byte.
        for left in (4096, 0):
            what = "%d bytes free" % left
            fill(filler)
            if left:
                os.truncate(filler, os.path.getsize(filler) - left)
            st = os.statvfs(home)
            free = st.f_bavail * st.f_frsize
            T.note("tmpfs: %d messages, filler %d bytes, %d bytes free" %
                   (len(msgs), os.path.getsize(filler), free))
            T.check("%s: the file system has %d bytes free" % (what, left),
                    free == left, free)
            idx = os.path.join(u.maildir, "pop3d.index")
            if left:
                T.check("%s: no index yet" % what, not os.path.exists(idx),
                        os.listdir(u.maildir))
            elif os.path.exists(idx):
                T.note("%s: the failed login left pop3d.index, %d bytes" %
                       (what, os.path.getsize(idx)))

            mark = O.log_size(srv)
            c, r = M.login_raw(srv, "full")
            if r.startswith(b"+OK"):
                try:
                    detail = "PASS got %r; then STAT %r" % (
                        r, c.cmd(b"STAT\r\n"))
                except (OSError, EOFError) as e:
                    detail = "PASS got %r; then %s" % (r, e)
            else:
                detail = r
            T.check("%s, no room for the index: PASS gets -ERR [SYS/TEMP]"
                    % what, r.startswith(b"-ERR [SYS/TEMP]"), detail)
            T.check("%s: ... and the connection is closed" % what,
                    c.closed(5), "open")
            c.close()
            T.note("log: %s" % " | ".join(
                l for l in O.log_text(srv, mark).splitlines()
                if "index" in l or "refused" in l or "logout" in l))
            srv.wait_sessions_done()
            T.check("%s: every message is still there, unchanged" % what,
                    read_mail(u.maildir) == want_mail,
                    sorted(read_mail(u.maildir)))
        os.unlink(filler)
        c, r = M.login_raw(srv, "full")
        T.check("with room again: full logs in", r.startswith(b"+OK"), r)
        if r.startswith(b"+OK"):
            want = b"+OK %d %d" % (len(msgs), sum(len(T.expected(d))
                                                  for d in msgs.values()))
            s = c.cmd(b"STAT\r\n")
            T.check("STAT counts every message", s.startswith(want),
                    (s, want))
            uidl = M.uidl_map(c)
            T.check("distinct UIDLs for all", len(set(uidl.values())) ==
                    len(msgs), uidl)
            same = True
            for i in range(1, len(msgs) + 1):
                body = retr_raw(c, i)
                if body not in (T.wire(d) for d in msgs.values()):
                    same = False
            T.check("every message retrieved intact", same, "")
            r = c.cmd(b"QUIT\r\n")
            T.check("QUIT", r.startswith(b"+OK"), r)
        c.close()
        srv.wait_sessions_done()
        T.check("after the full disk: all messages kept",
                len(read_mail(u.maildir)) == len(msgs),
                sorted(read_mail(u.maildir)))
    finally:
        if mounted:
            srv.wait_sessions_done()
            T.check("tmpfs unmounted", umount(home), home)


def main():
    with T.Server(users=USERS, login_procs=2) as srv:
        deliver_small(srv)
        with T.guard("kill -9 of a login process"):
            test_login_kill(srv)
        with T.guard("kill -9 of a mailbox process mid-RETR"):
            test_mailbox_kill(srv)
        with T.guard("full disk"):
            test_full_disk(srv)
        T.check("server still running at the end", srv.alive(), "")


T.run(main)
