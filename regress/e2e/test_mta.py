"""A real MTA in front of pop3d: a private Postfix instance on 127.0.0.1
takes three messages over SMTP and its virtual(8) delivery agent writes
them into the test user's Maildir as the user's uid; mpop then fetches
them through pop3d (POP3S) and each must arrive byte for byte as Postfix
stored it.  The RETR replies on the wire are checked against the files
too, before mpop deletes the mail.

The Postfix instance is the test's own: main.cf, master.cf, queue and log
in a temp dir, the SMTP server on a free port of 127.0.0.1, every other
transport "error" (nothing leaves the machine), started in the foreground
as its own process group and stopped by PID.  The system's Postfix (the
Debian package, installed unconfigured by regress/deps.sh) is neither
used nor started."""

import ctypes
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402

DOMAIN = "example.test"
SENDER = "carol@example.org"

# CRLF line ends as SMTP has them; smtplib dot-stuffs bytes itself.
MESSAGES = [
    b"From: carol@example.org\r\nTo: alice@example.test\r\n"
    b"Subject: mta one\r\n\r\nA plain message.\r\n",
    b"From: carol@example.org\r\nTo: alice@example.test\r\n"
    b"Subject: mta two, dots\r\n\r\n.a line that starts with a dot\r\n"
    b".\r\n..two dots\r\nlast line\r\n",
    b"From: carol@example.org\r\nTo: alice@example.test\r\n"
    b"Subject: mta three, 8-bit\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    b"\xc3\xa9t\xc3\xa9, \xc3\xbcber, \xe2\x82\xac 8-bit body\r\n"
    b"\xff\xfe raw high bytes\r\n",
]

START_LIMIT = 15        # seconds for Postfix to accept connections
DELIVERY_LIMIT = 20     # seconds for three messages to reach the Maildir


def body(msg):
    """The body as Postfix stores it: after the header, LF line ends."""
    return msg.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")


def become_subreaper():
    """Postfix's master does not wait for its children when it exits:
    adopt them, so that they are reaped here rather than left as zombies
    (or with a PID 1 that reaps nothing).  Linux only; harmless if not."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)      # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def pgid_of(pid):
    try:
        return os.getpgid(pid)
    except OSError:
        return None


class Postfix:
    """A private Postfix: virtual mailboxes of DOMAIN in the Maildirs of
    the users given, delivered as their uids."""

    def __init__(self, users):
        self.users = users              # [pop3dtest.User]
        self.tmp = None
        self.proc = None
        self.port = None

    def __enter__(self):
        try:
            self._setup()
            self._start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _setup(self):
        self.tmp = os.path.realpath(tempfile.mkdtemp(prefix="pop3d-mta."))
        os.chmod(self.tmp, 0o755)
        self.conf = os.path.join(self.tmp, "conf")
        self.spool = os.path.join(self.tmp, "spool")
        self.log = os.path.join(self.tmp, "maillog")
        os.mkdir(self.conf, 0o755)
        os.mkdir(self.spool, 0o755)
        self.port = T.free_port()

        # The Maildirs sit at <base>/<name>/Maildir; virtual(8) delivers
        # to a Maildir when the map's value ends with a slash.  Every user
        # of the test has the same base directory.
        bases = {os.path.dirname(os.path.dirname(u.maildir))
                 for u in self.users}
        if len(bases) != 1:
            raise RuntimeError("users' Maildirs under different bases")
        base = bases.pop()
        with open(os.path.join(self.conf, "vmailbox"), "w") as f:
            for u in self.users:
                f.write("%s@%s %s/\n" % (u.name, DOMAIN,
                                         os.path.relpath(u.maildir, base)))
        with open(os.path.join(self.conf, "vuid"), "w") as f:
            for u in self.users:
                f.write("%s@%s %d\n" % (u.name, DOMAIN, u.uid))
        with open(os.path.join(self.conf, "vgid"), "w") as f:
            for u in self.users:
                f.write("%s@%s %d\n" % (u.name, DOMAIN, u.gid))

        main_cf = {
            "compatibility_level": "3.6",
            "config_directory": self.conf,
            "queue_directory": self.spool,
            "data_directory": os.path.join(self.tmp, "data"),
            "multi_instance_directories": "",
            "syslog_name": "postfix-pop3dtest",
            "maillog_file": self.log,
            "maillog_file_prefixes": self.tmp,
            "myhostname": "mta.pop3d.test",
            "mydomain": "pop3d.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "inet_interfaces": T.HOST,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relayhost": "",
            # Nothing leaves: mail for anywhere else (bounces included)
            # fails in place, and no DNS is asked.
            "default_transport": "error:no mail leaves this test",
            "relay_transport": "error:no mail leaves this test",
            "smtp_dns_support_level": "disabled",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "smtputf8_enable": "no",
            "virtual_mailbox_domains": DOMAIN,
            "virtual_mailbox_base": base,
            "virtual_mailbox_maps": "texthash:" +
                                    os.path.join(self.conf, "vmailbox"),
            "virtual_uid_maps": "texthash:" +
                                os.path.join(self.conf, "vuid"),
            "virtual_gid_maps": "texthash:" +
                                os.path.join(self.conf, "vgid"),
            "virtual_minimum_uid": "1000",
        }
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("# written by regress/e2e/test_mta.py\n")
            for k, v in main_cf.items():
                f.write("%s = %s\n" % (k, v))
        # No chroot (the queue has no copy of /etc), SMTP on our port.
        services = [
            ("%s:%d" % (T.HOST, self.port), "inet", "n", "-", "-", "smtpd"),
            ("pickup", "unix", "n", "60", "1", "pickup"),
            ("cleanup", "unix", "n", "-", "0", "cleanup"),
            ("qmgr", "unix", "n", "300", "1", "qmgr"),
            ("rewrite", "unix", "-", "-", "-", "trivial-rewrite"),
            ("bounce", "unix", "-", "-", "0", "bounce"),
            ("defer", "unix", "-", "-", "0", "bounce"),
            ("trace", "unix", "-", "-", "0", "bounce"),
            ("verify", "unix", "-", "-", "1", "verify"),
            ("flush", "unix", "n", "1000?", "0", "flush"),
            ("proxymap", "unix", "-", "-", "-", "proxymap"),
            ("showq", "unix", "n", "-", "-", "showq"),
            ("error", "unix", "-", "-", "-", "error"),
            ("retry", "unix", "-", "-", "-", "error"),
            ("discard", "unix", "-", "-", "-", "discard"),
            ("virtual", "unix", "-", "-", "-", "virtual"),
            ("anvil", "unix", "-", "-", "1", "anvil"),
            ("scache", "unix", "-", "-", "1", "scache"),
            ("postlog", "unix-dgram", "n", "-", "1", "postlogd"),
        ]
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("# written by regress/e2e/test_mta.py\n")
            for name, kind, private, wakeup, limit, cmd in services:
                unpriv = "n" if cmd == "virtual" else "-"
                f.write("%-20s %-10s %s %s n %s %s %s\n" %
                        (name, kind, private, unpriv, wakeup, limit, cmd))

        r = subprocess.run(["postconf", "-c", self.conf, "-h",
                            "daemon_directory"], capture_output=True,
                           timeout=30)
        self.daemon_dir = r.stdout.decode().strip()
        if r.returncode != 0 or not self.daemon_dir:
            raise RuntimeError("postconf: %s" %
                               r.stderr.decode(errors="replace"))
        # Makes the queue's subdirectories with their owners, and checks.
        r = subprocess.run(["postfix", "-c", self.conf, "check"],
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("postfix check failed: %s %s" %
                               (r.stderr.decode(errors="replace"),
                                self.log_text()))

    def _start(self):
        # -d: stay in the foreground, so the PID is ours; a new session
        # makes master's process group (which it signals on exit) ours.
        self.proc = subprocess.Popen(
            [os.path.join(self.daemon_dir, "master"), "-c", self.conf, "-d"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
            env=dict(os.environ, MAIL_CONFIG=self.conf))
        end = time.monotonic() + START_LIMIT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("postfix master exited with %s: %s" %
                                   (self.proc.returncode, self.log_text()))
            try:
                with smtplib.SMTP(T.HOST, self.port, timeout=5,
                                  local_hostname="localhost") as s:
                    s.noop()
                return
            except (OSError, smtplib.SMTPException):
                if time.monotonic() >= end:
                    raise RuntimeError("postfix does not accept SMTP on "
                                       "%s:%d after %ds" %
                                       (T.HOST, self.port, START_LIMIT))
                time.sleep(0.1)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def __exit__(self, etype, evalue, tb):
        try:
            if self.proc is not None:
                self._stop()
        finally:
            if self.tmp is not None:
                if os.environ.get("POP3D_KEEP") == "1":
                    T.note("kept %s" % self.tmp)
                else:
                    shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def _members(self):
        """Our Postfix processes: master's descendants and its process
        group (children it started that may have been orphaned)."""
        pid = self.proc.pid
        out = set(T.descendants(pid))
        for p in T.all_pids():
            if p != pid and pgid_of(p) == pid:
                out.add(p)
        return out

    def _stop(self):
        pid = self.proc.pid
        kids = self._members()
        if self.proc.poll() is None:
            # master passes SIGTERM on to its process group and exits.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                T.note("postfix master alive 10s after SIGTERM: SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)
        kids |= {p for p in T.all_pids() if pgid_of(p) == pid}

        def alive():
            left = []
            for p in sorted(kids):
                try:        # adopted (we are a subreaper): reap it
                    if os.waitpid(p, os.WNOHANG)[0] == p:
                        continue
                except ChildProcessError:
                    pass
                st = T._read("/proc/%d/stat" % p)
                if st is not None and st[st.rindex(")") + 2] != "Z":
                    left.append(p)
            return left
        T.wait_for(lambda: not alive(), timeout=5)
        for p in alive():
            T.note("killing postfix process %d left behind" % p)
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        T.wait_for(lambda: not alive(), timeout=5)
        self.proc = None


def maildir_files(maildir):
    """{path: bytes} of the messages in new/ and cur/."""
    out = {}
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        for name in sorted(os.listdir(d)):
            if name.startswith("."):
                continue
            with open(os.path.join(d, name), "rb") as f:
                out[os.path.join(sub, name)] = f.read()
    return out


def send_all(mta):
    with smtplib.SMTP(T.HOST, mta.port, timeout=T.TIMEOUT,
                      local_hostname="localhost") as s:
        code, _ = s.ehlo()
        T.check("mta: EHLO accepted", code == 250, code)
        T.check("mta: Postfix offers 8BITMIME", s.has_extn("8bitmime"),
                s.esmtp_features)
        for i, m in enumerate(MESSAGES):
            opts = ["BODY=8BITMIME"] if i == 2 else []
            refused = s.sendmail(SENDER, ["alice@" + DOMAIN], m,
                                 mail_options=opts)
            T.check("mta: message %d accepted over SMTP" % (i + 1),
                    not refused, refused)


def check_delivery(srv, mta, alice):
    got = T.wait_for(lambda: len(maildir_files(alice.maildir)) >=
                     len(MESSAGES) and maildir_files(alice.maildir),
                     timeout=DELIVERY_LIMIT) or maildir_files(alice.maildir)
    T.check("mta: Postfix delivered %d messages into the Maildir" %
            len(MESSAGES), len(got) == len(MESSAGES),
            "got %d; log: %s" % (len(got), mta.log_text()))
    owners = {p: os.stat(os.path.join(alice.maildir, p)).st_uid
              for p in got}
    T.check("mta: the delivered files belong to alice's uid",
            set(owners.values()) == {alice.uid}, owners)
    T.check("mta: Postfix added its Received: header",
            all(b"\nReceived: from " in m and b"by mta.pop3d.test" in m
                for m in got.values()), "")
    for i, m in enumerate(MESSAGES):
        T.check("mta: the body of message %d is in one file" % (i + 1),
                sum(1 for f in got.values() if f.endswith(b"\n\n" +
                                                          body(m))) == 1,
                "body %r" % body(m)[:60])
    return got


def check_retr(srv, files):
    """The RETR replies are the files, CRLF and dot-stuffed: T.wire()."""
    want = sorted(T.wire(f) for f in files.values())
    got = []
    with srv.raw() as c:
        c.readline()
        c.cmd("USER alice\r\n")
        r = c.cmd("PASS alice-pw\r\n")
        T.check("mta: POP3 login", r.startswith(b"+OK"), r)
        r = c.cmd("STAT\r\n")
        T.check("mta: STAT counts %d messages" % len(files),
                r.startswith(b"+OK %d " % len(files)), r)
        for n in range(1, len(files) + 1):
            r = c.cmd("RETR %d\r\n" % n)
            if not r.startswith(b"+OK"):
                T.check("mta: RETR %d" % n, False, r)
                continue
            got.append(c.multiline())
        r = c.cmd("QUIT\r\n")
        T.check("mta: QUIT", r.startswith(b"+OK"), r)
    T.check("mta: each RETR sends its file byte for byte (CRLF, "
            "dot-stuffed)", sorted(got) == want,
            "got %s" % [g[:50] for g in sorted(got)])


def fetch_mpop(srv, files):
    dest = os.path.join(srv.tmp, "mpop-mta")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(dest, sub))
    cmd = ["mpop", "--host=" + T.HOST, "--port=%d" % srv.port,
           "--tls=on", "--tls-starttls=off", "--tls-trust-file=" + srv.cert,
           "--auth=user", "--user=alice", "--passwordeval=echo alice-pw",
           "--delivery=maildir," + dest, "--keep=off",
           "--received-header=off",
           "--uidls-file=" + os.path.join(srv.tmp, "mpop-mta-uidls"),
           "--timeout=20", "-q"]
    r = subprocess.run(cmd, capture_output=True, timeout=40,
                       env=dict(os.environ, HOME=srv.tmp))
    T.check("mta: mpop exits 0", r.returncode == 0,
            "exit %d: %s" % (r.returncode, r.stderr[-300:]))
    got = []
    for name in sorted(os.listdir(os.path.join(dest, "new"))):
        with open(os.path.join(dest, "new", name), "rb") as f:
            got.append(f.read())
    T.check("mta: mpop fetched %d messages" % len(files),
            len(got) == len(files), "got %d" % len(got))
    T.check("mta: mpop's copies equal Postfix's files byte for byte",
            sorted(got) == sorted(files.values()),
            "got %s" % [g[:50] for g in sorted(got)])
    for i, m in enumerate(MESSAGES):
        T.check("mta: message %d's body arrived intact" % (i + 1),
                any(g.endswith(b"\n\n" + body(m)) for g in got),
                "body %r" % body(m)[:60])
    srv.wait_sessions_done()
    T.check("mta: mpop --keep=off emptied the Maildir",
            srv.messages("alice") == [], srv.messages("alice"))


def main():
    for prog in ("postfix", "postconf", "mpop"):
        if shutil.which(prog) is None:
            T.check("mta: %s installed" % prog, False,
                    "not found; run make deps")
            return
    become_subreaper()
    deadline = time.monotonic() + 60
    with T.Server(users=[("alice", "alice-pw", "bcrypt")]) as srv:
        alice = srv.user("alice")
        with T.guard("mta: postfix"), Postfix([alice]) as mta:
            T.check("mta: private Postfix listens on %s:%d" %
                    (T.HOST, mta.port), True)
            send_all(mta)
            files = check_delivery(srv, mta, alice)
            if len(files) == len(MESSAGES):
                with T.guard("mta: RETR"):
                    check_retr(srv, files)
                srv.wait_sessions_done()
                with T.guard("mta: mpop"):
                    fetch_mpop(srv, files)
        T.check("mta: pop3d still running at the end", srv.alive(), "")
    T.check("mta: done within 60s", time.monotonic() < deadline,
            "%.0fs over" % (time.monotonic() - deadline))


T.run(main)
