"""auth system: throwaway system accounts (passwd + shadow) log in over
POP3S and read ~/Maildir as their own uid; wrong passwords, root, locked
accounts, accounts without a password and unknown users are refused.  The
accounts are deleted afterwards, whatever happens."""

import base64
import os
import pwd
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import opslib as O  # noqa: E402

PREFIX = "pop3d-sys."
# Names of this run alone: other runs of the suite may be going on at once
# on this machine.  A name holds the pid of the run that made it.
NAME_RX = re.compile(r"^pop3dt(\d+)[ab]$")
ACCOUNTS = [("pop3dt%da" % os.getpid(), "Sys-yes-Pw1", "yescrypt"),
            ("pop3dt%db" % os.getpid(), "Sys-sha-Pw2", "sha512")]

MSG = b"From: sys@example.org\nSubject: system account\n\nhello, system\n"

EXTRA = O.NO_DELAY + 'auth system\nmaildrop maildir "~/Maildir"\n'


def home_is_ours(name):
    try:
        return pwd.getpwnam(name).pw_dir.startswith(
            os.path.join(os.path.realpath(tempfile.gettempdir()), PREFIX))
    except KeyError:
        return False


def exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def userdel(name):
    r = O.run(["userdel", name], timeout=30)
    if r.rc != 0 and exists(name):
        r = O.run(["userdel", "-f", name], timeout=30)
    return r


def sweep():
    """Remove accounts left by runs that were killed (their pid is gone)."""
    for pw in pwd.getpwall():
        m = NAME_RX.match(pw.pw_name)
        if m is None or not home_is_ours(pw.pw_name):
            continue
        if os.path.exists("/proc/%s" % m.group(1)):
            continue
        T.note("removing %s, left over by an earlier run" % pw.pw_name)
        userdel(pw.pw_name)
        shutil.rmtree(os.path.dirname(pw.pw_dir), ignore_errors=True)


def create(name, password, method, base, made):
    """The account, its password and ~/Maildir; the Maildir path."""
    if exists(name):
        raise RuntimeError("account %s exists already; not touching it" %
                           name)
    home = os.path.join(base, name)
    nologin = "/usr/sbin/nologin"
    if not os.path.exists(nologin):
        nologin = "/sbin/nologin"
    r = O.run(["useradd", "--no-create-home", "--home-dir", home,
               "--shell", nologin, "--user-group", name], timeout=30)
    if r.rc != 0:
        raise RuntimeError("useradd %s: %r" % (name, r))
    made.append(name)       # deleted at the end, whatever happens next
    hashed = T.mkhash(method, password)
    r = O.run(["chpasswd", "-e"], input=("%s:%s\n" % (name, hashed)).encode(),
              timeout=30)
    if r.rc != 0:
        raise RuntimeError("chpasswd -e %s: %r" % (name, r))
    pw = pwd.getpwnam(name)
    return O.make_maildir(home, pw.pw_uid, pw.pw_gid)


def deliver(maildir, name, data, uid, gid):
    path = os.path.join(maildir, "new", name)
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, 0o600)


def plain_login(srv, user, password):
    """AUTH PLAIN on a new TLS connection: the reply."""
    with O.raw(srv) as c:
        c.readline()
        blob = base64.b64encode(b"\0" + user.encode() + b"\0" +
                                password.encode())
        r = c.cmd(b"AUTH PLAIN " + blob + b"\r\n")
        try:
            c.send(b"QUIT\r\n")
            c.readline()
        except (OSError, EOFError, T.ssl.SSLError):
            pass
        return r


def test_login(srv, name, password, method):
    pw = pwd.getpwnam(name)
    what = "the %s account" % method
    with T.guard("auth system: %s" % what):
        p = srv.pop3s(name, password)
        try:
            n, size = p.stat()
            T.check("auth system: %s logs in, STAT" % what,
                    (n, size) == (1, len(T.expected(MSG))), (n, size))
            _, lines, _ = p.retr(1)
            T.check("auth system: %s RETR 1" % what,
                    T.joined(lines) == T.expected(MSG), lines[:3])
            mbox = srv.mailbox_pids()
            ids = T.proc_ids(mbox[0]) if len(mbox) == 1 else {}
            T.check("auth system: %s's mailbox process runs as its uid and gid"
                    % what,
                    set(ids.get("Uid", [-1])) == {pw.pw_uid} and
                    set(ids.get("Gid", [-1])) == {pw.pw_gid},
                    "%s %s" % (mbox, ids))
        finally:
            p.quit()
        srv.wait_sessions_done()
        T.check("auth system: %s's index is in ~/Maildir" % what,
                os.path.exists(os.path.join(pw.pw_dir, "Maildir",
                                            "pop3d.index")), pw.pw_dir)


def refused(srv, what, user, password):
    r = O.login_reply(srv, user, password)
    T.check("auth system: %s: -ERR [AUTH]" % what,
            r.startswith(b"-ERR [AUTH]"), r)
    srv.wait_sessions_done()


def main():
    base = os.path.realpath(tempfile.mkdtemp(prefix=PREFIX))
    os.chmod(base, 0o755)
    made = []
    try:
        sweep()
        for name, password, method in ACCOUNTS:
            maildir = create(name, password, method, base, made)
            pw = pwd.getpwnam(name)
            deliver(maildir, "1700000001.M1P1.test", MSG, pw.pw_uid,
                    pw.pw_gid)
        with T.Server(control=True, conf_extra=EXTRA) as srv:
            for name, password, method in ACCOUNTS:
                test_login(srv, name, password, method)
            with T.guard("auth system refusals"):
                name, password, _ = ACCOUNTS[0]
                refused(srv, "wrong password", name, password + "x")
                refused(srv, "USER root / PASS x", "root", "x")
                r = plain_login(srv, "root", "x")
                T.check("auth system: AUTH PLAIN as root: -ERR [AUTH]",
                        r.startswith(b"-ERR [AUTH]"), r)
                refused(srv, "an unknown user", "pop3dtest-none", password)
                refused(srv, "a users-file user (alice)", "alice", "alicepw")
                refused(srv, "a system account with a '*' password (daemon)",
                        "daemon", "*")

                # Locked: the right password is not enough.
                name2, password2, _ = ACCOUNTS[1]
                r = O.run(["usermod", "-L", name2], timeout=30)
                T.check("usermod -L", r.rc == 0, r)
                refused(srv, "a locked account with its password", name2,
                        password2)
                r = plain_login(srv, name2, password2)
                T.check("auth system: AUTH PLAIN, locked account: -ERR "
                        "[AUTH]", r.startswith(b"-ERR [AUTH]"), r)

                # No password at all: nothing gets in.
                r = O.run(["usermod", "-p", "", name2], timeout=30)
                T.check("usermod -p ''", r.rc == 0, r)
                r = plain_login(srv, name2, "")
                T.check("auth system: an account with an empty password "
                        "field: AUTH PLAIN with an empty password refused",
                        not r.startswith(b"+OK"), r)
                with O.raw(srv) as c:
                    c.readline()
                    c.cmd(b"USER %s\r\n" % name2.encode())
                    r = c.cmd(b"PASS \r\n")
                    T.check("auth system: an account with an empty password "
                            "field: 'PASS ' refused",
                            not r.startswith(b"+OK"), r)
                srv.wait_sessions_done()

                text = O.log_text(srv)
                T.check("auth system: root's attempt is logged as a failure",
                        "user root: authentication failed" in text,
                        text[-400:])

            with T.guard("auth system: expired account"):
                # An account past its expiry date (shadow's 8th field, as
                # chage -E / usermod -e set it) is disabled for every
                # login, password or not.
                name, password, _ = ACCOUNTS[0]
                r = O.run(["chage", "-E", "2000-01-01", name], timeout=30)
                T.check("chage -E 2000-01-01", r.rc == 0, r)
                refused(srv, "an account expired since 2000-01-01, with "
                        "its right password", name, password)
            T.check("server still running at the end", srv.alive(), "")
    finally:
        for name in made:
            if exists(name) and home_is_ours(name):
                r = userdel(name)
                T.check("userdel of the %s account" %
                        ("first" if name == ACCOUNTS[0][0] else "second"),
                        not exists(name), r)
        shutil.rmtree(base, ignore_errors=True)


T.run(main)
