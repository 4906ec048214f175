"""The process model, read from /proc: a root master; login processes as
_pop3d chrooted to the empty dir; one mailbox process a session, as the mail
user, chrooted to the user's Maildir; gone when the session ends."""

import os
import pwd
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402


def describe(pid):
    return "pid %d %s ids %s root %s" % (pid, sorted(T.proc_names(pid)),
                                         T.proc_ids(pid), T.proc_root(pid))


def check_ids(what, pid, uid, gid):
    ids = T.proc_ids(pid)
    T.check("%s: real, effective, saved and fs uid are %d" % (what, uid),
            ids.get("Uid") == [uid] * 4, describe(pid))
    T.check("%s: real, effective, saved and fs gid are %d" % (what, gid),
            ids.get("Gid") == [gid] * 4, describe(pid))
    groups = ids.get("Groups", [])
    T.check("%s: no supplementary groups but its own" % what,
            set(groups) <= {gid}, "Groups: %s" % groups)


def main():
    unpriv = None
    with T.Server(users=[("alice", "alice-pw", "bcrypt"),
                         ("bob", "bob-pw", "sha512")],
                  login_procs=2) as srv:
        srv.deliver("alice", "1700000001.M1P1.test", b"Subject: a\n\na\n")
        srv.deliver("bob", "1700000001.M1P1.test", b"Subject: b\n\nb\n")
        unpriv = pwd.getpwnam(T.UNPRIV)

        with T.guard("master"):
            ids = T.proc_ids(srv.pid)
            T.check("master runs as root (all four uids 0)",
                    ids.get("Uid") == [0, 0, 0, 0], describe(srv.pid))
            T.check("master is build/pop3d",
                    T.proc_exe(srv.pid) == os.path.join(T.BUILD, "pop3d"),
                    T.proc_exe(srv.pid))

        with T.guard("login processes"):
            logins = T.wait_for(lambda: len(srv.login_pids()) >= 2 and
                                srv.login_pids(), timeout=5) or \
                srv.login_pids()
            T.check("2 login processes (login-processes 2)",
                    len(logins) == 2, [describe(p) for p, _ in
                                       srv.children()])
            for i, p in enumerate(sorted(logins)):
                check_ids("login process %d" % (i + 1), p, unpriv.pw_uid,
                          unpriv.pw_gid)
                T.check("login process %d: root is the chroot dir" % (i + 1),
                        T.proc_root(p) == srv.chroot, describe(p))
                T.check("login process %d: runs build/pop3d-login" % (i + 1),
                        T.proc_exe(p) ==
                        os.path.join(T.BUILD, "pop3d-login"), T.proc_exe(p))
            others = [p for p, k in srv.children() if k == "other"]
            T.check("no process below the master but login and mailbox",
                    not others, [describe(p) for p in others])
            T.check("no mailbox process before any login",
                    srv.mailbox_pids() == [], srv.mailbox_pids())

        with T.guard("mailbox process"):
            pa = srv.pop3s("alice")
            pa.stat()
            mbox = srv.mailbox_pids()
            T.check("one mailbox process for one session", len(mbox) == 1,
                    [describe(p) for p, _ in srv.children()])
            alice = srv.user("alice")
            for p in mbox:
                check_ids("alice's mailbox process", p, alice.uid, alice.gid)
                T.check("alice's mailbox process: root is her Maildir",
                        T.proc_root(p) == os.path.realpath(alice.maildir),
                        describe(p))
                T.check("alice's mailbox process: runs build/pop3d-mailbox",
                        T.proc_exe(p) ==
                        os.path.join(T.BUILD, "pop3d-mailbox"), T.proc_exe(p))

            pb = srv.pop3s("bob")
            pb.stat()
            bob = srv.user("bob")
            mbox2 = srv.mailbox_pids()
            T.check("two mailbox processes for two sessions",
                    len(mbox2) == 2, [describe(p) for p in mbox2])
            bobs = [p for p in mbox2 if p not in mbox]
            for p in bobs:
                check_ids("bob's mailbox process", p, bob.uid, bob.gid)
                T.check("bob's mailbox process: root is his Maildir",
                        T.proc_root(p) == os.path.realpath(bob.maildir),
                        describe(p))
            T.check("login processes unchanged during sessions",
                    sorted(srv.login_pids()) == sorted(logins),
                    srv.login_pids())
            pa.quit()
            pb.quit()
            T.check("mailbox processes exit after QUIT",
                    srv.wait_sessions_done(), [describe(p) for p in
                                               srv.mailbox_pids()])

        with T.guard("dropped session"):
            pa = srv.pop3s("alice")
            pa.stat()
            T.check("mailbox process for a new session",
                    len(srv.mailbox_pids()) == 1, srv.mailbox_pids())
            pa.file.close()
            pa.sock.close()
            T.check("mailbox process exits after the connection drops",
                    srv.wait_sessions_done(), srv.mailbox_pids())

        with T.guard("failed login"):
            p = srv.pop3s()
            p.user("alice")
            try:
                p.pass_("wrong")
            except T.poplib.error_proto:
                pass
            T.check("no mailbox process after a failed login",
                    srv.mailbox_pids() == [], srv.mailbox_pids())
            p.quit()

        T.check("server still running at the end", srv.alive(), "")


T.run(main)
