#!/usr/bin/env python3
"""
make bench: pop3d and Dovecot side by side on this machine (stdlib only).

    python3 regress/bench/bench.py        # as root, after make and
                                          # make build/loadgen

It starts build/pop3d in its default configuration and, where Dovecot is
installed (it installs dovecot-pop3d if it may), two private Dovecot
instances: high-security login mode (service_count = 1) and performance
login mode (service_count = 0, process_min_avail = cores).  All three
share one certificate, one set of users with the same bcrypt hashes and
the same Maildirs, each listens on its own loopback port.  Every scenario
of build/loadgen runs against each of them in turn, round after round,
and one table shows the medians and the ratios.

Scenarios (see regress/bench/loadgen.c):
  login1, login16  connect, TLS, AUTH PLAIN, STAT, QUIT; 1 and 16 clients
                   polling: just before, untimed, every user logs in once,
                   as when each client last polled minutes ago (within
                   pop3d's auth cache, 5 minutes by default)
  cold1            the same, 1 client, every password unchecked recently:
                   the auth cache emptied first (pop3d: SIGHUP; Dovecot:
                   doveadm auth cache flush, if it has one), each user
                   at most once
  retr             LIST and RETR of each of 2,000 messages, sizes checked
  big1, big2, big3 UIDL of 100,000 messages: first session without any
                   index, then a second one, then one after a new message
                   (moved to cur/: the index cannot take cur/ unread)
  idle             200 logged-in sessions held; RSS and PSS of the server's
                   processes per session

Environment:
  BENCH_DIR=/var/tmp/pop3d-bench  work dir; the Maildirs are kept there
                                  between runs (they take a while)
  BENCH_ROUNDS=2                  rounds per scenario (median reported)
  BENCH_SECONDS=8                 length of one login or retr run
  BENCH_SCENARIOS=...             comma list, default
                                  login1,login16,cold1,retr,big,idle
  BENCH_SERVERS=...               comma list of pop3d, dovecot-hs,
                                  dovecot-perf (default: all there are),
                                  and pop3d-nodelay, a what-if: pop3d
                                  with TCP_NODELAY (regress/bench/nodelay.c
                                  preloaded)
  BENCH_BCRYPT_COST=10            cost of the users' bcrypt hashes
                                  (pop3ctl encrypt's)
  BENCH_IDLE=200                  sessions of the idle scenario
  BENCH_BIG=100000                messages of the big mailbox
  BENCH_DOVECOT_AUTH_CACHE=0      1: Dovecot's auth cache on in both modes
                                  (measured: over passwd-file it caches
                                  nothing, AUTH stays one bcrypt)
  BENCH_NO_INSTALL=1              never apt-get install Dovecot
  BENCH_NO_SPEED=1                skip the openssl speed ceilings
"""

import json
import os
import platform
import pwd
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("POP3D_BUILD",
                                       os.path.join(REPO, "build")))
WORK = os.path.abspath(os.environ.get("BENCH_DIR", "/var/tmp/pop3d-bench"))
LOADGEN = os.path.join(BUILD, "loadgen")
HOST = "127.0.0.1"
UNPRIV = "_pop3d"
MAIL_UID = 61900            # owner of every bench Maildir
PASSWORD = "bench-Passw0rd"
NUSERS = 256                # bench1..bench256, small mailboxes
SMALL_MSGS = 10
RETR_MSGS = 2000
DATA_VERSION = "1"          # bump when the generated mail changes

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
COST = int(os.environ.get("BENCH_BCRYPT_COST", "10"))
IDLE = int(os.environ.get("BENCH_IDLE", "200"))
BIG_MSGS = int(os.environ.get("BENCH_BIG", "100000"))
ALL_SCENARIOS = ["login1", "login16", "cold1", "retr", "big", "idle"]
SCENARIOS = [s for s in os.environ.get("BENCH_SCENARIOS",
                                       ",".join(ALL_SCENARIOS)).split(",")
             if s]
ALL_SERVERS = ["pop3d", "dovecot-hs", "dovecot-perf"]
NCPU = os.cpu_count() or 1

T_START = time.monotonic()


def log(msg):
    print("bench: [%4.0fs] %s" % (time.monotonic() - T_START, msg),
          file=sys.stderr, flush=True)


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, **kw)


# ---------------------------------------------------------------- machine

def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kb / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    info = {
        "cpus": NCPU,
        "cpu": model,
        "kernel": platform.release(),
        "memory": mem,
        "os": distro(),
        "openssl": run(["openssl", "version"]).stdout.strip(),
        "dovecot": dovecot_version() or "not installed",
        "pop3d": git_rev(),
    }
    return info


def distro():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def git_rev():
    r = run(["git", "-C", REPO, "describe", "--always", "--dirty"])
    return r.stdout.strip() if r.returncode == 0 else "?"


def dovecot_version():
    if shutil.which("dovecot") is None:
        return None
    r = run(["dovecot", "--version"])
    return r.stdout.strip() if r.returncode == 0 else None


def speed_ceilings(hash_):
    """This machine's limits, one core: openssl speed and crypt(3)."""
    out = {}
    if os.environ.get("BENCH_NO_SPEED") == "1":
        return out
    log("openssl speed (about 10 s)")
    r = run(["openssl", "speed", "-seconds", "2", "ecdsap256"])
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)"
                  r"\s+([\d.]+)", r.stdout)
    if m:
        out["ecdsa_p256_sign_s"] = float(m.group(1))
        out["ecdsa_p256_verify_s"] = float(m.group(2))
    r = run(["openssl", "speed", "-seconds", "2", "ecdhx25519"])
    m = re.search(r"253 bits ecdh \(X25519\)\s+\S+s\s+([\d.]+)", r.stdout)
    if m:
        out["x25519_op_s"] = float(m.group(1))
    r = run(["openssl", "speed", "-seconds", "2", "-bytes", "16384",
             "-evp", "aes-256-gcm"])
    m = re.search(r"^AES-256-GCM\s+([\d.]+)k", r.stdout, re.M)
    if m:
        out["aes256gcm_MB_s"] = float(m.group(1)) * 1000 / 1e6
    r = run([LOADGEN, "crypt", "-t", "2", hash_, PASSWORD])
    kv = parse_kv(r.stdout)
    if "rate" in kv:
        out["bcrypt_checks_s"] = float(kv["rate"])
        out["bcrypt_ms"] = float(kv["ms_per_check"])
    return out


# ---------------------------------------------------------------- set-up

def ensure_root():
    if os.geteuid() != 0:
        sys.exit("bench: must run as root (the servers bind, chroot and "
                 "change uids)")


def ensure_unpriv_user():
    try:
        pwd.getpwnam(UNPRIV)
        return
    except KeyError:
        pass
    nologin = "/usr/sbin/nologin"
    if not os.path.exists(nologin):
        nologin = "/sbin/nologin"
    run(["useradd", "--system", "--no-create-home", "--home-dir",
         "/var/empty", "--shell", nologin, UNPRIV], check=True)


def install_dovecot():
    """apt-get install dovecot-pop3d, without starting the system's."""
    if dovecot_version() is not None:
        return True
    if os.environ.get("BENCH_NO_INSTALL") == "1":
        return False
    if shutil.which("apt-get") is None:
        log("Dovecot is not installed and there is no apt-get: "
            "pop3d only")
        return False
    log("installing dovecot-pop3d (its service is not started)")
    policy = "/usr/sbin/policy-rc.d"
    made = False
    if not os.path.exists(policy):
        with open(policy, "w") as f:
            f.write("#!/bin/sh\n# pop3d make bench: no services\n"
                    "exit 101\n")
        os.chmod(policy, 0o755)
        made = True
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        r = run(["apt-get", "install", "-y", "-q",
                 "--no-install-recommends", "dovecot-pop3d"], env=env,
                timeout=600)
        if r.returncode != 0:
            run(["apt-get", "update", "-q"], env=env, timeout=600)
            r = run(["apt-get", "install", "-y", "-q",
                     "--no-install-recommends", "dovecot-pop3d"],
                    env=env, timeout=600)
        if r.returncode != 0:
            log("apt-get install dovecot-pop3d failed: pop3d only\n" +
                r.stderr[-2000:])
    finally:
        if made:
            os.unlink(policy)
    return dovecot_version() is not None


def make_cert(cert, key):
    base = ["openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=localhost", "-days", "7",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", key, "-out", cert]
    run(base, check=True)
    os.chmod(key, 0o600)


def free_port(taken):
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            p = s.getsockname()[1]
        if p not in taken:
            taken.add(p)
            return p


def hashes(names):
    """One bcrypt hash per user, kept between runs (cost 10 takes 60 ms
    each): {name: hash}."""
    path = os.path.join(WORK, "hashes-%d.json" % COST)
    known = {}
    try:
        with open(path) as f:
            known = json.load(f)
    except (OSError, ValueError):
        pass
    if known.get("password") != PASSWORD:
        known = {"password": PASSWORD}
    todo = [n for n in names if n not in known]
    if todo:
        log("%d bcrypt hashes of cost %d" % (len(todo), COST))
        procs = {}
        for n in todo:
            while len(procs) >= NCPU:
                done = [k for k, p in procs.items() if p.poll() is not None]
                for k in done:
                    known[k] = finish_hash(procs.pop(k))
                if not done:
                    time.sleep(0.01)
            procs[n] = subprocess.Popen([LOADGEN, "hash", str(COST),
                                         PASSWORD], stdout=subprocess.PIPE,
                                        text=True)
        for k, p in procs.items():
            known[k] = finish_hash(p)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(known, f)
        os.replace(tmp, path)
    return {n: known[n] for n in names}


def finish_hash(p):
    out, _ = p.communicate(timeout=60)
    h = out.strip()
    if p.returncode != 0 or not h.startswith("$2b$"):
        raise RuntimeError("loadgen hash failed")
    return h


# ---------------------------------------------------------------- mail

class Text:
    """Deterministic printable lines to cut messages from."""

    def __init__(self, seed, size=8 * 1024 * 1024):
        rnd = random.Random(seed)
        words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz")
                       for _ in range(rnd.randrange(1, 11)))
                 for _ in range(4000)]
        lines = []
        n = 0
        while n < size:
            k = rnd.randrange(0, 78)
            parts, ln = [], 0
            while ln < k:
                w = rnd.choice(words)
                parts.append(w)
                ln += len(w) + 1
            line = b" ".join(parts)
            r = rnd.randrange(60)
            if r == 0:
                line = b"." + line          # dot-stuffing on the wire
            elif r == 1:
                line = b".."
            elif r == 2:
                line = b""
            line += b"\n"
            lines.append(line)
            n += len(line)
        self.blob = b"".join(lines)
        self.starts = []
        pos = 0
        for line in lines:
            self.starts.append(pos)
            pos += len(line)

    def body(self, rnd, size):
        i = rnd.randrange(len(self.starts))
        start = self.starts[i]
        if start + size > len(self.blob):
            start = 0
        end = self.blob.find(b"\n", start + size)
        if end == -1:
            end = len(self.blob) - 1
        return self.blob[start:end + 1]


def message(text, rnd, n, size):
    head = (b"Return-Path: <sender%d@example.org>\n"
            b"Delivered-To: bench@example.net\n"
            b"From: Sender %d <sender%d@example.org>\n"
            b"To: bench@example.net\n"
            b"Subject: bench message %d\n"
            b"Date: Tue, 14 Nov 2023 10:%02d:%02d +0000\n"
            b"Message-ID: <%d.%d@example.org>\n"
            b"MIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=us-ascii\n\n" %
            (n, n, n, n, n // 60 % 60, n % 60, n, rnd.randrange(1 << 30)))
    return head + text.body(rnd, max(0, size - len(head)))


def log_uniform(rnd, lo, hi):
    return int(lo * (hi / lo) ** rnd.random())


def make_maildir(home, sizes, seed, text):
    """home/Maildir with one file a message in cur/, owned by MAIL_UID.
    Kept when its marker says it has this content already."""
    maildir = os.path.join(home, "Maildir")
    marker = os.path.join(home, ".bench-data")
    want = "v%s %d %d %d" % (DATA_VERSION, seed, len(sizes), sum(sizes))
    try:
        with open(marker) as f:
            if f.read() == want:
                return maildir, False
    except OSError:
        pass
    if os.path.exists(home):
        shutil.rmtree(home)
    os.makedirs(home, 0o755)
    os.chown(home, MAIL_UID, MAIL_UID)
    os.mkdir(maildir, 0o700)
    os.chown(maildir, MAIL_UID, MAIL_UID)
    for sub in ("cur", "new", "tmp"):
        d = os.path.join(maildir, sub)
        os.mkdir(d, 0o700)
        os.chown(d, MAIL_UID, MAIL_UID)
    rnd = random.Random(seed)
    cur = os.path.join(maildir, "cur")
    t = 1700000000 + seed * 1000
    for i, size in enumerate(sizes):
        # Postfix-style names: no size hints, so both servers read every
        # file once to learn its size.
        name = "%d.V801I%xM%d.bench.example:2," % (t + i, seed * 1000003 + i,
                                                   i)
        path = os.path.join(cur, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, message(text, rnd, i, size))
            os.fchown(fd, MAIL_UID, MAIL_UID)
        finally:
            os.close(fd)
    with open(marker, "w") as f:
        f.write(want)
    return maildir, True


def make_mail():
    """bench1..benchN (small), retr (2,000 mixed), big (100,000)."""
    mail = os.path.join(WORK, "mail")
    os.makedirs(mail, 0o755, exist_ok=True)
    os.chmod(WORK, 0o755)
    os.chmod(mail, 0o755)
    text = Text(1939)
    users = {}
    made = 0
    for i in range(1, NUSERS + 1):
        rnd = random.Random(i)
        sizes = [log_uniform(rnd, 2048, 16384) for _ in range(SMALL_MSGS)]
        md, new = make_maildir(os.path.join(mail, "bench%d" % i), sizes,
                               i, text)
        users["bench%d" % i] = md
        made += new
    if made:
        log("made %d small Maildirs" % made)

    rnd = random.Random(2000)
    sizes = [log_uniform(rnd, 2048, 51200) for _ in range(RETR_MSGS)]
    for j in rnd.sample(range(RETR_MSGS), 8):
        sizes[j] = rnd.randrange(1 << 20, 5 << 20)     # a few MiB
    t = time.monotonic()
    md, new = make_maildir(os.path.join(mail, "retr"), sizes, 5000, text)
    users["retr"] = md
    if new:
        log("made the retr Maildir: %d messages, %.1f MB, %.0f s" %
            (len(sizes), sum(sizes) / 1e6, time.monotonic() - t))

    rnd = random.Random(100000)
    sizes = [log_uniform(rnd, 1024, 8192) for _ in range(BIG_MSGS)]
    if "big" in SCENARIOS:
        t = time.monotonic()
        log("the big Maildir (%d messages; kept for later runs)" %
            BIG_MSGS)
        md, new = make_maildir(os.path.join(mail, "big"), sizes, 7000, text)
        if new:
            log("made the big Maildir: %.1f MB, %.0f s" %
                (sum(sizes) / 1e6, time.monotonic() - t))
        users["big"] = md
    return users


def wipe_indexes(maildir):
    """Every index of both servers: the next session starts from files."""
    for name in os.listdir(maildir):
        if name.startswith("pop3d.index") or name.startswith("dovecot"):
            p = os.path.join(maildir, name)
            if os.path.isdir(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)


# ---------------------------------------------------------------- servers

class Server:
    name = None

    def __init__(self, port):
        self.port = port
        self.proc = None
        self.dir = os.path.join(WORK, self.name)
        self.logf = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.write_config()
        self.logf = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf,
                                     cwd=self.dir,
                                     env=getattr(self, "env", None))
        self.wait_ready()

    def wait_ready(self, limit=20):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        end = time.monotonic() + limit
        last = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited at start (%s); see %s/log" %
                                   (self.name, self.proc.returncode,
                                    self.dir))
            try:
                with socket.create_connection((HOST, self.port),
                                              timeout=2) as s:
                    with ctx.wrap_socket(s) as t:
                        g = t.recv(512)
                        if g.startswith(b"+OK"):
                            t.sendall(b"QUIT\r\n")
                            return
                        last = g
            except (OSError, ssl.SSLError) as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError("%s not ready on port %d: %s" %
                           (self.name, self.port, last))

    def pids(self):
        """The master and everything below it."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid] + descendants(self.proc.pid)

    def stop(self):
        if self.proc is None:
            return
        seen = set(self.pids())
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # Children the master left behind are still ours.
        end = time.monotonic() + 5
        left = [p for p in seen if alive(p)]
        while left and time.monotonic() < end:
            time.sleep(0.1)
            left = [p for p in left if alive(p)]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        self.proc = None
        if self.logf:
            self.logf.close()


class Pop3d(Server):
    name = "pop3d"

    def __init__(self, port, cert, key, users_file):
        super().__init__(port)
        self.cert, self.key, self.users_file = cert, key, users_file

    def write_config(self):
        chroot = os.path.join(WORK, "empty")
        os.makedirs(chroot, 0o755, exist_ok=True)
        os.chown(chroot, 0, 0)
        os.chmod(chroot, 0o755)
        self.conf = os.path.join(self.dir, "pop3d.conf")
        with open(self.conf, "w") as f:
            f.write("# make bench: the defaults, but for what a "
                    "private instance needs\n")
            f.write('pki localhost cert "%s"\n' % self.cert)
            f.write('pki localhost key "%s"\n' % self.key)
            f.write("listen on %s port %d tls pki localhost\n" %
                    (HOST, self.port))
            f.write('auth passwd "%s"\n' % self.users_file)
            f.write('user "%s"\n' % UNPRIV)
            f.write('chroot "%s"\n' % chroot)
            f.write('control socket "%s"\n' %
                    os.path.join(self.dir, "ctl.sock"))
            # Every bench client comes from 127.0.0.1.
            f.write("max-sessions-per-ip 10000\n")

    def command(self):
        return [os.path.join(BUILD, "pop3d"), "-d", "-x", BUILD,
                "-f", self.conf]

    def forget_auth(self):
        """SIGHUP: the reload empties the auth cache and starts new login
        processes; back once the master says so and one greets."""
        path = os.path.join(self.dir, "log")
        size = os.path.getsize(path)
        self.proc.send_signal(signal.SIGHUP)
        end = time.monotonic() + 10
        while True:
            with open(path, "rb") as f:
                f.seek(size)
                new = f.read()
            if b"configuration reloaded" in new:
                break
            if b"reload failed" in new or time.monotonic() > end:
                raise RuntimeError("%s: no reload after SIGHUP; see %s" %
                                   (self.name, path))
            time.sleep(0.05)
        self.wait_ready(max(1, end - time.monotonic()))
        return "SIGHUP, reloaded"


class Pop3dNodelay(Pop3d):
    """A what-if, not pop3d's configuration: TCP_NODELAY on the client
    sockets of pop3d-login, by regress/bench/nodelay.c preloaded."""
    name = "pop3d-nodelay"

    def start(self):
        so = os.path.join(BUILD, "bench-nodelay.so")
        src = os.path.join(REPO, "regress", "bench", "nodelay.c")
        if not os.path.exists(so) or \
                os.path.getmtime(so) < os.path.getmtime(src):
            run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC",
                 "-o", so, src, "-ldl"], check=True)
        self.env = dict(os.environ, LD_PRELOAD=so)
        super().start()


class Dovecot(Server):
    service_count = 1

    def __init__(self, port, cert, key, passwd):
        super().__init__(port)
        self.cert, self.key, self.passwd = cert, key, passwd

    def write_config(self):
        run_dir = os.path.join(self.dir, "run")
        state = os.path.join(self.dir, "state")
        for d in (run_dir, state):
            os.makedirs(d, 0o755, exist_ok=True)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        dh = "/usr/share/dovecot/dh.pem"
        cache = os.environ.get("BENCH_DOVECOT_AUTH_CACHE") == "1"
        with open(self.conf, "w") as f:
            f.write("""# make bench: a private Dovecot, POP3S only
base_dir = %(run)s
state_dir = %(state)s
instance_name = pop3d-bench-%(name)s
protocols = pop3
listen = %(host)s
log_path = %(dir)s/log
ssl = required
ssl_cert = <%(cert)s
ssl_key = <%(key)s
ssl_min_protocol = TLSv1.2
%(dh)s
disable_plaintext_auth = yes
auth_mechanisms = plain
%(cache)s
passdb {
  driver = passwd-file
  args = scheme=CRYPT username_format=%%u %(passwd)s
}
userdb {
  driver = passwd-file
  args = username_format=%%u %(passwd)s
}
mail_location = maildir:~/Maildir
first_valid_uid = %(uid)d
protocol pop3 {
  mail_max_userip_connections = 10000
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    address = %(host)s
    port = %(port)d
    ssl = yes
  }
  process_limit = 10000
%(mode)s
}
service pop3 {
  process_limit = 10000
}
""" % {"run": run_dir, "state": state, "name": self.name, "host": HOST,
                "dir": self.dir, "cert": self.cert, "key": self.key,
                "dh": ("ssl_dh = <%s" % dh) if os.path.exists(dh) else "",
                "cache": ("auth_cache_size = 10M\nauth_cache_ttl = 5 mins"
                          if cache else ""),
                "passwd": self.passwd, "uid": min(MAIL_UID, 500),
                "port": self.port, "mode": self.mode()})
        r = run(["doveconf", "-c", self.conf, "-n"])
        if r.returncode != 0:
            raise RuntimeError("doveconf: %s" % r.stderr.strip())

    def mode(self):
        return "  service_count = 1"

    def forget_auth(self):
        """doveadm auth cache flush, when there is a cache; a restart if
        that fails."""
        if os.environ.get("BENCH_DOVECOT_AUTH_CACHE") != "1":
            return "no auth cache"
        r = run(["doveadm", "-c", self.conf, "auth", "cache", "flush"],
                timeout=30)
        if r.returncode == 0:
            return "doveadm: " + (r.stdout.strip() or "flushed")
        log("  %s: doveadm auth cache flush failed (%s): restarting" %
            (self.name, (r.stderr or r.stdout).strip()[:200]))
        self.stop()
        self.start()
        return "restarted"

    def command(self):
        return ["dovecot", "-F", "-c", self.conf]


class DovecotHS(Dovecot):
    name = "dovecot-hs"


class DovecotPerf(Dovecot):
    name = "dovecot-perf"

    def mode(self):
        return ("  service_count = 0\n  process_min_avail = %d\n"
                "  vsz_limit = 1G" % NCPU)


# ---------------------------------------------------------------- /proc

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def alive(pid):
    st = read("/proc/%d/stat" % pid)
    return st is not None and st[st.rindex(")") + 2] != "Z"


def descendants(pid):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = read("/proc/%s/stat" % d)
        if st is None:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def memory(pids):
    """(RSS KiB, PSS KiB, processes) summed over pids."""
    rss = pss = n = 0
    for p in pids:
        st = read("/proc/%d/status" % p)
        sr = read("/proc/%d/smaps_rollup" % p)
        if st is None:
            continue
        m = re.search(r"^VmRSS:\s+(\d+)", st, re.M)
        if m is None:           # a zombie
            continue
        n += 1
        rss += int(m.group(1))
        m = re.search(r"^Pss:\s+(\d+)", sr or "", re.M)
        if m:
            pss += int(m.group(1))
    return rss, pss, n


CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """CPU time of pids and of their children already reaped."""
    t = 0
    for p in pids:
        st = read("/proc/%d/stat" % p)
        if st is None:
            continue
        f = st[st.rindex(")") + 2:].split()
        t += sum(int(x) for x in f[11:15])    # utime stime cutime cstime
    return t / CLK


# ---------------------------------------------------------------- scenarios

def parse_kv(text, prefix="result"):
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return dict(kv.split("=", 1) for kv in line.split()[1:]
                        if "=" in kv)
    return {}


def loadgen(srv, args, timeout):
    cmd = [LOADGEN] + args + ["-p", str(srv.port), "-w", PASSWORD,
                              "-l", srv.name]
    cpu0 = cpu_seconds(srv.pids())
    t = time.monotonic()
    try:
        r = run(cmd, timeout=timeout)
    except subprocess.TimeoutExpired:
        log("  %s: loadgen ran out of time (%d s)" % (srv.name, timeout))
        return {"errors": "1"}
    wall = time.monotonic() - t
    cpu = cpu_seconds(srv.pids()) - cpu0
    kv = parse_kv(r.stdout)
    if not kv:
        kv = {"errors": "1"}
    kv["server_cpu_s"] = "%.2f" % cpu
    kv["wall_s"] = "%.2f" % wall
    if r.stderr.strip():
        for line in r.stderr.strip().splitlines()[:5]:
            log("  " + line)
    return kv


def per_login(kv):
    n = int(kv.get("sessions", "0"))
    if n:
        kv["server_cpu_ms_per_login"] = "%.2f" % (
            float(kv["server_cpu_s"]) * 1e3 / n)
    return kv


def log_in_all(srv):
    """Untimed: each of the NUSERS users logs in once, 4 clients.  The
    run that follows finds every user's last login seconds ago: steady
    polling, with whatever auth cache the server keeps.  Its errors."""
    kv = loadgen(srv, ["login", "-c", "4", "-u", "bench",
                       "-U", str(NUSERS), "-n", str(NUSERS),
                       "-e", str(SMALL_MSGS), "-t", "300", "-T", "60"], 420)
    n = int(kv.get("sessions", "0"))
    errs = int(kv.get("errors", "1")) + (n != NUSERS)
    log("  warm-up: %d of %d users logged in, %s s, errors=%d" %
        (n, NUSERS, kv.get("wall_s", "?"), errs))
    return errs


def sc_login(srv, conc):
    errs = log_in_all(srv)
    kv = per_login(loadgen(srv, ["login", "-c", str(conc), "-u", "bench",
                                 "-U", str(NUSERS), "-e", str(SMALL_MSGS),
                                 "-t", str(SECONDS), "-W", str(2 * conc),
                                 "-T", "60"], SECONDS + 120))
    kv["errors"] = str(int(kv.get("errors", "1")) + errs)
    return kv


def sc_cold(srv):
    """1 client, the auth cache emptied first, then users 1..NUSERS in
    turn (2 of them the untimed warm-up): none twice."""
    log("  " + srv.forget_auth())
    return per_login(loadgen(srv, ["login", "-c", "1", "-u", "bench",
                                   "-U", str(NUSERS), "-n", str(NUSERS - 2),
                                   "-e", str(SMALL_MSGS),
                                   "-t", str(SECONDS), "-W", "2",
                                   "-T", "60"], SECONDS + 120))


def sc_retr(srv):
    return loadgen(srv, ["retr", "-u", "retr", "-e", str(RETR_MSGS),
                         "-t", str(SECONDS), "-T", "120"], SECONDS + 200)


def warm(maildir):
    """Read every message once: each server's first session then finds
    the files in the page cache, whichever runs first."""
    cur = os.path.join(maildir, "cur")
    for name in os.listdir(cur):
        with open(os.path.join(cur, name), "rb") as f:
            f.read()


NEWMAIL = "1999999999.V801Inew.bench.example"


def drop_newmail(maildir):
    """The message sc_big delivers, wherever a server moved it."""
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        for name in os.listdir(d):
            if name.split(":")[0] == NEWMAIL:
                os.unlink(os.path.join(d, name))


def sc_big(srv, maildir):
    """First session, second, then a third after one new message (which
    goes again, and cur/ is left still for 2 s: the next server's
    sessions must not find a cur/ just changed)."""
    wipe_indexes(maildir)
    drop_newmail(maildir)
    out = {}
    for which, n in (("first", BIG_MSGS), ("second", BIG_MSGS),
                     ("newmail", BIG_MSGS + 1)):
        if which == "newmail":
            path = os.path.join(maildir, "new", NEWMAIL)
            with open(path, "wb") as f:
                f.write(b"Subject: new\n\none new message\n")
            os.chown(path, MAIL_UID, MAIL_UID)
        kv = loadgen(srv, ["uidl", "-u", "big", "-e", str(n),
                           "-n", "1", "-t", "0", "-T", "600"], 700)
        out[which] = kv
    drop_newmail(maildir)
    time.sleep(2.5)
    return out


def sc_idle(srv):
    time.sleep(1)
    base = memory(srv.pids())
    cmd = [LOADGEN, "idle", "-u", "bench", "-U", str(NUSERS), "-n",
           str(IDLE), "-c", "16", "-e", str(SMALL_MSGS), "-t", "300",
           "-T", "120", "-p", str(srv.port), "-w", PASSWORD,
           "-l", srv.name]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out = {}
    try:
        ready = p.stdout.readline()
        kv = parse_kv(ready, "ready")
        time.sleep(1)
        held = memory(srv.pids())
        n = int(kv.get("sessions", "0"))
        out.update(kv)
        out["base_rss_kib"] = base[0]
        out["base_procs"] = base[2]
        out["rss_kib"] = held[0]
        out["pss_kib"] = held[1]
        out["procs"] = held[2]
        if n:
            out["rss_kib_per_session"] = "%.0f" % ((held[0] - base[0]) / n)
            out["pss_kib_per_session"] = "%.0f" % ((held[1] - base[1]) / n)
            out["procs_per_session"] = "%.2f" % ((held[2] - base[2]) / n)
        p.stdin.write("\n")
        p.stdin.flush()
        rest, err = p.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        p.kill()
        rest, err = p.communicate()
    kv = parse_kv(rest)
    out["errors"] = str(int(out.get("errors", "0")) +
                        int(kv.get("errors", "1")))
    for line in (err or "").strip().splitlines()[:5]:
        log("  " + line)
    return out


# ---------------------------------------------------------------- table

def median(xs):
    xs = sorted(xs)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


# (row label, scenario, key, higher is better, target vs dovecot-perf)
ROWS = [
    ("login/s, 1 client, polling", "login1", "rate", True, 1.5),
    ("  p50 ms", "login1", "p50_ms", False, None),
    ("  p99 ms", "login1", "p99_ms", False, None),
    ("  TLS handshake p50 ms", "login1", "tls_p50_ms", False, None),
    ("  AUTH..+OK p50 ms", "login1", "auth_p50_ms", False, None),
    ("  server CPU ms/login", "login1", "server_cpu_ms_per_login", False,
     None),
    ("login/s, 16 clients, polling", "login16", "rate", True, 1.5),
    ("  p50 ms", "login16", "p50_ms", False, None),
    ("  p99 ms", "login16", "p99_ms", False, None),
    ("  AUTH..+OK p50 ms", "login16", "auth_p50_ms", False, None),
    ("  server CPU ms/login", "login16", "server_cpu_ms_per_login", False,
     None),
    ("  loadgen CPU %", "login16", "client_cpu_pct", False, None),
    ("login/s, 1 client, cold", "cold1", "rate", True, None),
    ("  p50 ms", "cold1", "p50_ms", False, None),
    ("  p99 ms", "cold1", "p99_ms", False, None),
    ("  AUTH..+OK p50 ms", "cold1", "auth_p50_ms", False, None),
    ("  server CPU ms/login", "cold1", "server_cpu_ms_per_login", False,
     None),
    ("RETR MB/s (2,000 msgs)", "retr", "mbps", True, 1.2),
    ("  loadgen CPU %", "retr", "client_cpu_pct", False, None),
    ("big 1st: AUTH..UIDL end ms", "big1", "total_ms", False, 0.5),
    ("  login reply..UIDL end ms", "big1", "uidl_ms", False, None),
    ("big 2nd: AUTH..UIDL end ms", "big2", "total_ms", False, 0.5),
    ("  login reply..UIDL end ms", "big2", "uidl_ms", False, None),
    ("big 3rd, 1 new: AUTH..UIDL end ms", "big3", "total_ms", False, None),
    ("idle: RSS KiB/session", "idle", "rss_kib_per_session", False, 0.5),
    ("idle: PSS KiB/session", "idle", "pss_kib_per_session", False, None),
    ("idle: processes/session", "idle", "procs_per_session", False, None),
]


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return "%.0f" % v
    if abs(v) >= 100:
        return "%.1f" % v
    return "%.2f" % v


def table(results, servers):
    names = [s.name for s in servers]
    lines = []
    w0 = 36
    head = "%-*s" % (w0, "scenario") + "".join("%14s" % n for n in names)
    if "pop3d" in names and "dovecot-perf" in names:
        head += "%10s" % "vs perf"
    if "pop3d" in names and "dovecot-hs" in names:
        head += "%10s" % "vs hs"
    head += "  target"
    lines.append(head)
    lines.append("-" * len(head))
    verdicts = []
    for label, sc, key, higher, target in ROWS:
        if sc not in results:
            continue
        vals = {}
        for n in names:
            xs = []
            for kv in results[sc].get(n, []):
                try:
                    x = float(kv[key])
                except (KeyError, ValueError):
                    continue
                if x >= 0:
                    xs.append(x)
            vals[n] = median(xs)
        row = "%-*s" % (w0, label) + "".join("%14s" % fmt(vals[n])
                                             for n in names)
        tgt = ""
        for other, col in (("dovecot-perf", "vs perf"),
                           ("dovecot-hs", "vs hs")):
            if "pop3d" not in names or other not in names:
                continue
            a, b = vals.get("pop3d"), vals.get(other)
            ratio = a / b if a is not None and b else None
            row += "%9sx" % (fmt(ratio) if ratio is not None else "-")
            if other == "dovecot-perf" and target is not None and \
                    ratio is not None:
                ok = ratio >= target if higher else ratio <= target
                tgt = "%s%.1fx %s" % (">=" if higher else "<=", target,
                                      "ok" if ok else "MISSED")
                verdicts.append((label.strip(), ok))
        lines.append(row + "  " + tgt)
    errs = "%-*s" % (w0, "errors (all runs)")
    for n in names:
        e = 0
        for sc in results:
            for kv in results[sc].get(n, []):
                try:
                    e += int(kv.get("errors", "0"))
                except ValueError:
                    e += 1
        errs += "%14d" % e
    lines.append(errs)
    return "\n".join(lines), verdicts


# ---------------------------------------------------------------- main

def serve_until_eof(servers):
    """bench.py serve: the servers stay up for profiling by hand."""
    limit = float(os.environ.get("BENCH_SERVE_SECONDS", "1800"))
    for s in servers:
        print("%s port=%d master=%d dir=%s" % (s.name, s.port, s.proc.pid,
                                                s.dir), flush=True)
    print("password=%s users=bench1..bench%d,retr%s; end of input or "
          "%.0f s stops them" % (PASSWORD, NUSERS,
                                 ",big" if "big" in SCENARIOS else "",
                                 limit), flush=True)
    import select
    end = time.monotonic() + limit
    while time.monotonic() < end:
        r, _, _ = select.select([sys.stdin], [], [], 1)
        if r and not sys.stdin.readline():
            break


def main():
    serve = sys.argv[1:] == ["serve"]
    if sys.argv[1:] and not serve:
        sys.exit("usage: bench.py [serve]")
    ensure_root()
    # Unwind on a signal too: the finally clause stops the servers.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signo, frame: sys.exit(128 + signo))
    for exe in ("pop3d", "pop3d-login", "pop3d-mailbox", "loadgen"):
        if not os.access(os.path.join(BUILD, exe), os.X_OK):
            sys.exit("bench: %s/%s is not built (make bench builds it)" %
                     (BUILD, exe))
    os.makedirs(WORK, 0o755, exist_ok=True)
    ensure_unpriv_user()
    have_dovecot = install_dovecot()
    wanted = os.environ.get("BENCH_SERVERS", ",".join(ALL_SERVERS))
    wanted = [s for s in wanted.split(",") if s]
    if not have_dovecot:
        wanted = [s for s in wanted if not s.startswith("dovecot")]

    info = machine_info()
    t = time.monotonic()
    users = make_mail()
    log("mail ready (%.0f s)" % (time.monotonic() - t))

    names = ["bench%d" % i for i in range(1, NUSERS + 1)] + ["retr"]
    if "big" in users:
        names.append("big")
    hs = hashes(names)
    cert = os.path.join(WORK, "cert.pem")
    key = os.path.join(WORK, "key.pem")
    make_cert(cert, key)
    pop3d_users = os.path.join(WORK, "pop3d.users")
    dovecot_passwd = os.path.join(WORK, "dovecot.passwd")
    with open(pop3d_users, "w") as f, open(dovecot_passwd, "w") as g:
        for n in names:
            md = users[n]
            f.write("%s:%s:%d:%d:%s:\n" % (n, hs[n], MAIL_UID, MAIL_UID, md))
            g.write("%s:{CRYPT}%s:%d:%d::%s::\n" %
                    (n, hs[n], MAIL_UID, MAIL_UID, os.path.dirname(md)))
    os.chmod(pop3d_users, 0o600)
    os.chmod(dovecot_passwd, 0o640)
    try:
        os.chown(dovecot_passwd, 0, pwd.getpwnam("dovecot").pw_gid)
    except KeyError:
        pass

    ceil = speed_ceilings(hs["bench1"])

    taken = set()
    servers = []
    for n in wanted:
        port = free_port(taken)
        if n == "pop3d":
            servers.append(Pop3d(port, cert, key, pop3d_users))
        elif n == "pop3d-nodelay":
            servers.append(Pop3dNodelay(port, cert, key, pop3d_users))
        elif n == "dovecot-hs":
            servers.append(DovecotHS(port, cert, key, dovecot_passwd))
        elif n == "dovecot-perf":
            servers.append(DovecotPerf(port, cert, key, dovecot_passwd))
    results = {}
    try:
        for s in servers:
            log("starting %s on %s:%d" % (s.name, HOST, s.port))
            s.start()
        if serve:
            serve_until_eof(servers)
            return
        for sc in SCENARIOS:
            for rnd in range(ROUNDS):
                # Alternate: each round starts with the next server.
                order = servers[rnd % len(servers):] + \
                    servers[:rnd % len(servers)]
                for s in order:
                    log("%s round %d: %s" % (sc, rnd + 1, s.name))
                    if sc == "login1":
                        kv = sc_login(s, 1)
                    elif sc == "login16":
                        kv = sc_login(s, 16)
                    elif sc == "cold1":
                        kv = sc_cold(s)
                    elif sc == "retr":
                        kv = sc_retr(s)
                    elif sc == "big":
                        if "big" not in users:
                            continue
                        if rnd == 0 and s is order[0]:
                            warm(users["big"])
                        two = sc_big(s, users["big"])
                        results.setdefault("big1", {}).setdefault(
                            s.name, []).append(two["first"])
                        results.setdefault("big2", {}).setdefault(
                            s.name, []).append(two["second"])
                        results.setdefault("big3", {}).setdefault(
                            s.name, []).append(two["newmail"])
                        for k in ("first", "second", "newmail"):
                            log("  " + short(two[k]))
                        continue
                    elif sc == "idle":
                        kv = sc_idle(s)
                    else:
                        sys.exit("bench: unknown scenario %s" % sc)
                    results.setdefault(sc, {}).setdefault(
                        s.name, []).append(kv)
                    log("  " + short(kv))
    finally:
        for s in servers:
            s.stop()

    out = report(info, ceil, results, servers)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(WORK, "results-%s.json" % stamp), "w") as f:
        json.dump({"machine": info, "ceilings": ceil, "results": results,
                   "config": {"rounds": ROUNDS, "seconds": SECONDS,
                              "bcrypt_cost": COST, "idle": IDLE,
                              "big": BIG_MSGS}}, f, indent=1)
    with open(os.path.join(WORK, "results-%s.txt" % stamp), "w") as f:
        f.write(out + "\n")
    log("results in %s/results-%s.{txt,json}; total %.0f s" %
        (WORK, stamp, time.monotonic() - T_START))


def short(kv):
    keys = ("label", "rate", "p50_ms", "p99_ms", "mbps", "uidl_ms",
            "total_ms", "rss_kib_per_session", "pss_kib_per_session",
            "errors", "server_cpu_ms_per_login", "client_cpu_pct")
    return " ".join("%s=%s" % (k, kv[k]) for k in keys if k in kv)


def report(info, ceil, results, servers):
    out = []
    out.append("pop3d make bench, %s" % time.strftime("%Y-%m-%d %H:%M"))
    out.append("machine: %d CPUs, %s, Linux %s, %s, %s" %
               (info["cpus"], info["cpu"], info["kernel"], info["memory"],
                info["os"]))
    out.append("software: pop3d %s, Dovecot %s, %s" %
               (info["pop3d"], info["dovecot"], info["openssl"]))
    out.append("setup: TLS 1.3 to 127.0.0.1, ECDSA P-256 certificate, "
               "bcrypt cost %d, %d rounds of %gs, medians; Dovecot auth "
               "cache %s" % (COST, ROUNDS, SECONDS,
                             "on" if os.environ.get(
                                 "BENCH_DOVECOT_AUTH_CACHE") == "1"
                             else "off (its default)"))
    if ceil:
        parts = []
        if "ecdsa_p256_sign_s" in ceil:
            parts.append("ECDSA P-256 %.0f sign/s" %
                         ceil["ecdsa_p256_sign_s"])
        if "x25519_op_s" in ceil:
            parts.append("X25519 %.0f op/s" % ceil["x25519_op_s"])
        if "aes256gcm_MB_s" in ceil:
            parts.append("AES-256-GCM %.0f MB/s" % ceil["aes256gcm_MB_s"])
        if "bcrypt_checks_s" in ceil:
            parts.append("bcrypt(%d) %.1f checks/s (%.1f ms)" %
                         (COST, ceil["bcrypt_checks_s"], ceil["bcrypt_ms"]))
        out.append("ceilings, one core: " + ", ".join(parts))
        if "bcrypt_checks_s" in ceil:
            out.append("  => at most %.0f password checks/s on %d cores; "
                       "a handshake costs one sign + two X25519 ops" %
                       (ceil["bcrypt_checks_s"] * NCPU, NCPU))
    out.append("")
    tab, verdicts = table(results, servers)
    out.append(tab)
    out.append("")
    out.append("vs perf, vs hs: pop3d / Dovecot (performance, high-security "
               "login mode); the target is on vs perf.")
    out.append("login: connect..QUIT reply per session; TLS handshake: "
               "connect..greeting.  polling: just before, untimed, each "
               "user logs in once, as clients that poll every few minutes "
               "(pop3d's auth cache skips the bcrypt of a check it made in "
               "the last 5 minutes; Dovecot's, off unless "
               "BENCH_DOVECOT_AUTH_CACHE=1, caches nothing over the "
               "passwd-file used here: AUTH stays one bcrypt).  cold: the "
               "auth "
               "cache emptied first (pop3d: SIGHUP; Dovecot: doveadm auth "
               "cache flush), no user twice: one bcrypt(%d) check a login."
               % COST)
    out.append("big: Dovecot replies to AUTH before it reads the Maildir, "
               "pop3d after, so AUTH..UIDL end is the comparable time.  "
               "idle: (all server processes with the sessions - without) / "
               "sessions.")
    if verdicts:
        out.append("")
        out.append("targets vs Dovecot performance mode: %d of %d met" %
                   (sum(ok for _, ok in verdicts), len(verdicts)))
    text = "\n".join(out)
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
