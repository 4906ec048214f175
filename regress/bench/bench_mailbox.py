#!/usr/bin/env python3
"""
make bench-mailbox: the mailbox process with a large maildrop.

    python3 regress/bench/bench_mailbox.py [-n messages] [--no-strace]

Builds a Maildir of 100,000 small messages and an mbox of as many (in a
temp dir, removed afterwards), starts build/pop3d with the regress
harness, and for each maildrop times three sessions: the first without
an index, then two with it.  For each: PASS to its +OK (scan and index),
+OK to the end of the UIDL listing, and the mailbox process's peak memory
(VmHWM).  Then, under strace(1), it counts the system calls that touch
message files: a first session must open each Maildir file once (and
stat none), a session with the index none at all; an mbox session with
the index must not read the mbox.

Needs root (the harness does), build/ made; strace for the counts.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import pop3dtest as T  # noqa: E402
import maildroplib as M  # noqa: E402

FILE_CALLS = ("open", "openat", "stat", "lstat", "newfstatat", "statx",
              "access", "faccessat", "faccessat2", "readlink",
              "readlinkat")


def make_maildir(srv, n):
    u = srv.user("alice")
    dfd = os.open(os.path.join(u.maildir, "cur"), os.O_RDONLY)
    try:
        for i in range(n):
            name = "%d.M%dP%d.bench:2," % (1700000000 + i, i, i)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600,
                         dir_fd=dfd)
            os.write(fd, b"From: b%d@example.org\nSubject: bench %d\n\n"
                     b"A small message, number %d.\n" % (i, i, i))
            os.fchown(fd, u.uid, u.gid)
            os.close(fd)
    finally:
        os.close(dfd)


def make_mbox(srv, n):
    u = srv.user("alice")
    with open(u.mbox, "wb") as f:
        for i in range(n):
            f.write(M.mbox_entry(b"From: b%d@example.org\nSubject: bench "
                                 b"%d\n\nA small message, number %d.\n" %
                                 (i, i, i), date="Mon Jan  1 00:%02d:%02d "
                                 "2024" % (i // 60 % 60, i % 60)))


def session(srv, n, timeout=T.TIMEOUT):
    """(PASS to +OK, +OK to end of UIDL, VmHWM KiB) of one session."""
    c = srv.raw()
    c.sock.settimeout(timeout)
    c.readline()
    c.cmd(b"USER alice\r\n")
    t0 = time.monotonic()
    r = c.cmd(b"PASS alice-pw\r\n")
    t1 = time.monotonic()
    if not r.startswith(b"+OK"):
        raise RuntimeError("login: %r" % r)
    r = c.cmd(b"UIDL\r\n")
    lines = c.multiline().count(b"\r\n") - 1
    t2 = time.monotonic()
    if lines != n:
        raise RuntimeError("UIDL listed %d of %d" % (lines, n))
    hwm = M.vm_hwm_kib(M.session_pid(srv, "alice"))
    c.cmd(b"QUIT\r\n")
    c.close()
    srv.wait_sessions_done(30)
    return t1 - t0, t2 - t1, hwm


def traced(srv, n, calls):
    """Run one session with strace following the master's children;
    return the trace lines."""
    out = os.path.join(srv.tmp, "strace.out")
    p = subprocess.Popen(["strace", "-f", "-qq", "-y", "-s", "0",
                          "-e", "trace=" + ",".join(calls), "-o", out,
                          "-p", str(srv.pid)],
                         stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        session(srv, n, timeout=600)     # traced, each call is slow
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(30)
    with open(out, errors="replace") as f:
        return f.read().splitlines()


def drop_index(d):
    for name in os.listdir(d):
        if name.startswith("pop3d.index"):
            os.unlink(os.path.join(d, name))


def report(kind, rows):
    print("%s:" % kind)
    print("  %-26s %10s %14s %10s" % ("session", "PASS->+OK", "+OK->UIDL end",
                                      "peak RSS"))
    for what, (a, b, hwm) in rows:
        print("  %-26s %9.2fs %13.2fs %7.1f MiB" % (what, a, b,
                                                     hwm / 1024.0))


def bench_maildir(n, use_strace):
    with T.Server(users=[("alice", "alice-pw", "sha512")]) as srv:
        t0 = time.monotonic()
        make_maildir(srv, n)
        print("Maildir of %d messages written in %.1fs" %
              (n, time.monotonic() - t0))
        idx = srv.user("alice").maildir
        rows = [("first (no index)", session(srv, n)),
                ("second (index)", session(srv, n)),
                ("third (index)", session(srv, n))]
        report("Maildir, %d messages" % n, rows)
        if not use_strace:
            return
        for label, drop in (("first session (no index)", True),
                            ("session with the index", False)):
            if drop:
                drop_index(idx)
            lines = traced(srv, n, FILE_CALLS)
            per = {}
            for line in lines:
                m = re.match(r"\d+\s+(\w+)\(.*\"(/?cur/[^\"]*)\"", line)
                if m:
                    per[m.group(1)] = per.get(m.group(1), 0) + 1
            print("  strace, %s: calls on message files: %s" %
                  (label, per or "none"))


def bench_mbox(n, use_strace):
    with M.MboxServer(users=[("alice", "alice-pw", "sha512")]) as srv:
        t0 = time.monotonic()
        make_mbox(srv, n)
        size = os.path.getsize(srv.user("alice").mbox)
        print("mbox of %d messages (%.1f MiB) written in %.1fs" %
              (n, size / 1048576.0, time.monotonic() - t0))
        rows = [("first (no index)", session(srv, n)),
                ("second (index)", session(srv, n)),
                ("third (index)", session(srv, n))]
        report("mbox, %d messages" % n, rows)
        if not use_strace:
            return
        mbox = os.path.realpath(srv.user("alice").mbox)
        for label, drop in (("first session (no index)", True),
                            ("session with the index", False)):
            if drop:
                drop_index(srv.index_dir("alice"))
            lines = traced(srv, n, ("read", "pread64"))
            calls = octets = 0
            for line in lines:
                m = re.match(r"\d+\s+p?read(?:64)?\(\d+<([^>]*)>.*= (\d+)",
                             line)
                if m and m.group(1) == mbox:
                    calls += 1
                    octets += int(m.group(2))
            print("  strace, %s: %d reads of the mbox, %d octets (the "
                  "file is %d)" % (label, calls, octets, size))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("--no-strace", action="store_true")
    ap.add_argument("--only", choices=("maildir", "mbox"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_mailbox: must run as root")
    use_strace = not args.no_strace and shutil.which("strace") is not None
    if not use_strace:
        print("(no strace: system call counts left out)")
    print("bench_mailbox: %d messages, %d cores" % (args.n, os.cpu_count()))
    if args.only != "mbox":
        bench_maildir(args.n, use_strace)
    if args.only != "maildir":
        bench_mbox(args.n, use_strace)


main()
