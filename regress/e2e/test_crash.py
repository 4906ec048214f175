"""kill -9 of the mailbox process at random moments of the UPDATE state,
in a loop, for a Maildir and for an mbox.  After each kill, and the next
login (which finishes an interrupted mbox update), the maildrop must
hold every message that was not deleted, once, with its old unique-id;
of the deleted ones a Maildir may keep any subset, an mbox all or none;
and mail delivered to the mbox right after the kill is kept."""

import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import maildroplib as M  # noqa: E402

RUNS = int(os.environ.get("POP3D_CRASH_RUNS", "30"))
SEED = int(os.environ.get("POP3D_CRASH_SEED", str(int(time.time()))))
MAILDIR_N = 800
MBOX_N = 40


class Tally:
    """One check per property over all the runs, with the first few
    failures as detail."""

    def __init__(self, what):
        self.what = what
        self.bad = {}
        self.props = []

    def expect(self, prop, cond, detail):
        if prop not in self.props:
            self.props.append(prop)
        if not cond:
            self.bad.setdefault(prop, []).append(detail)

    def report(self):
        for prop in self.props:
            bad = self.bad.get(prop, [])
            T.check("%s: %s" % (self.what, prop), not bad,
                    "%d of %d runs: %s" % (len(bad), RUNS, bad[:3]))


def kill_at(pid, delay):
    if delay > 0:
        time.sleep(delay)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_until(cond, limit=2.0):
    """Spin (no sleep: the moments are milliseconds) until cond()."""
    end = time.monotonic() + limit
    while not cond() and time.monotonic() < end:
        pass


def exited(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] in "ZX"
    except OSError:
        return True


def maildir_base(name):
    return name.split(":")[0]


def maildir_loop(rnd):
    tally = Tally("Maildir kill -9 in UPDATE")
    phases = {"none": 0, "some": 0, "all": 0}
    with T.Server(users=[("alice", "alice-pw", "sha512")]) as srv:
        cur = os.path.join(srv.user("alice").maildir, "cur")
        serial = 0
        window = None
        for run in range(RUNS):
            with T.guard("Maildir run %d" % run):
                have = len(srv.messages("alice"))
                for _ in range(MAILDIR_N - have):
                    serial += 1
                    srv.deliver("alice", "18%08d.M%dP%d.crash" % (
                        serial, serial, run), b"Subject: %d\n\nx\n" % serial)
                c, r = M.login_raw(srv, "alice")
                old = M.uidl_map(c)
                dele = rnd.sample(sorted(old), rnd.randint(100, 600))
                c.send(b"".join(b"DELE %d\r\n" % n for n in dele))
                for _ in dele:
                    c.readline()
                pid = M.session_pid(srv, "alice")
                before = set(srv.messages("alice"))
                deleted = {old[n] for n in dele}
                kept = set(old.values()) - deleted
                t0 = time.monotonic()
                c.send(b"QUIT\r\n")
                if window is None:
                    # The first run measures how long an UPDATE takes.
                    wait_until(lambda: exited(pid))
                    window = max(time.monotonic() - t0, 0.002)
                    T.note("Maildir UPDATE of %d files took %.3fs" %
                           (len(dele), window))
                elif rnd.random() < 0.1:
                    kill_at(pid, 0)
                elif rnd.random() < 0.4:
                    kill_at(pid, rnd.uniform(0, window))
                else:
                    # Watch cur/ empty out, kill at a random point of it.
                    goal = len(before) - rnd.randint(0, len(dele))
                    wait_until(lambda: len(os.listdir(cur)) <= goal)
                    kill_at(pid, 0)
                c.close()
                srv.wait_sessions_done()
                after = set(srv.messages("alice"))
                gone = before - after
                phases["none" if not gone else "all" if gone == deleted
                       else "some"] += 1
                tally.expect("every message not deleted is kept",
                             kept <= after, sorted(kept - after)[:3])
                tally.expect("only deleted messages go",
                             gone <= deleted, sorted(gone - deleted)[:3])
                c, r = M.login_raw(srv, "alice")
                new = M.uidl_map(c)
                c.cmd(b"QUIT\r\n")
                c.close()
                srv.wait_sessions_done()
                tally.expect("the next session lists each file once",
                             sorted(new.values()) == sorted(after),
                             (len(new), len(after)))
                # Unique-ids are base names: the same one, the same file.
                tally.expect("kept messages keep their unique-ids",
                             kept <= set(new.values()), run)
        tally.report()
        T.note("Maildir runs, deleted files gone at the kill: %s" % phases)
        T.check("Maildir: server still running", srv.alive(), "")


def mbox_body(serial, size):
    """A unique message with lines mail.local escapes."""
    line = b"%08d " % serial + b"x" * 70 + b"\n"
    body = (b"Subject: crash %d\nMessage-Id: <%d@crash>\n\n"
            b"From the start of the body\n" % (serial, serial))
    body += line * (size // len(line))
    return body + b"\n.\nFrom after an empty line\nend %d\n" % serial


def present(path):
    """The messages of the mbox, by their Subject serial, in order."""
    out = []
    for m in M.mbox_messages(path):
        i = m.find(b"Subject: crash ")
        out.append(int(m[i + 15:m.index(b"\n", i)]) if i >= 0 else -1)
    return out


def mbox_loop(rnd):
    tally = Tally("mbox kill -9 in UPDATE")
    phases = {"none": 0, "all": 0, "other": 0}
    with M.MboxServer(users=[("alice", "alice-pw", "sha512")]) as srv:
        u = srv.user("alice")
        idx = srv.index_dir("alice")
        jfile = os.path.join(idx, "pop3d.journal")
        jtmp = jfile + ".tmp"
        serial = 0
        window = None
        hows = {}
        for run in range(RUNS):
            with T.guard("mbox run %d" % run):
                have = len(present(u.mbox))
                for _ in range(MBOX_N - have):
                    serial += 1
                    M.deliver_mbox(u.mbox, mbox_body(
                        serial, rnd.randint(20000, 200000)))
                before = present(u.mbox)
                c, r = M.login_raw(srv, "alice")
                old = M.uidl_map(c)
                byserial = {before[n - 1]: old[n] for n in old}
                k = rnd.randint(1, 12)
                dele = rnd.sample(sorted(old), k)
                if rnd.random() < 0.5 and 1 not in dele:
                    dele.append(1)      # the whole mbox is rewritten
                c.send(b"".join(b"DELE %d\r\n" % n for n in dele))
                for _ in dele:
                    c.readline()
                pid = M.session_pid(srv, "alice")
                deleted = {before[n - 1] for n in dele}
                kept = set(before) - deleted
                size = os.path.getsize(u.mbox)
                t0 = time.monotonic()
                c.send(b"QUIT\r\n")
                how = "measure" if window is None else rnd.choice(
                    ("delay", "writing journal", "copying back",
                     "truncated"))
                if how == "measure":
                    # The first run measures how long an UPDATE takes.
                    wait_until(lambda: exited(pid))
                    window = max(time.monotonic() - t0, 0.005)
                    T.note("mbox UPDATE of %d octets took %.3fs" %
                           (size, window))
                elif how == "delay":
                    kill_at(pid, rnd.uniform(0, window))
                elif how == "writing journal":
                    wait_until(lambda: os.path.exists(jtmp))
                    kill_at(pid, rnd.uniform(0, window / 4))
                elif how == "copying back":
                    wait_until(lambda: os.path.exists(jfile))
                    kill_at(pid, rnd.uniform(0, 0.002))
                else:
                    wait_until(lambda: os.path.getsize(u.mbox) != size)
                    kill_at(pid, 0)
                c.close()
                srv.wait_sessions_done()
                # Mail arriving right after the crash must survive.
                late = []
                if rnd.random() < 0.5:
                    serial += 1
                    M.deliver_mbox(u.mbox, mbox_body(serial, 3000))
                    late.append(serial)
                c, r = M.login_raw(srv, "alice")
                tally.expect("the next login works", r.startswith(b"+OK"),
                             r)
                new = M.uidl_map(c)
                now = present(u.mbox)       # recovered at login
                c.cmd(b"QUIT\r\n")
                c.close()
                srv.wait_sessions_done()
                gone = set(before) - set(now)
                phase = ("none" if not gone else "all" if gone == deleted
                         else "other")
                phases[phase] += 1
                hows.setdefault(how, {}).setdefault(phase, 0)
                hows[how][phase] += 1
                tally.expect("no message twice", len(now) == len(set(now)),
                             now)
                tally.expect("every message not deleted is kept",
                             kept <= set(now), sorted(kept - set(now)))
                tally.expect("the deleted ones go all or none",
                             gone in (set(), deleted), (gone, deleted))
                tally.expect("mail delivered after the kill is kept",
                             set(late) <= set(now), (late, now[-3:]))
                tally.expect("no message that was never there",
                             set(now) <= set(before) | set(late),
                             sorted(set(now) - set(before) - set(late)))
                tally.expect("the session lists what the file holds",
                             len(new) == len(now), (len(new), len(now)))
                tally.expect("kept messages keep their unique-ids",
                             all(new[n] == byserial[s] for n, s in
                                 zip(sorted(new), now) if s in kept), run)
                tally.expect("no journal set aside",
                             not os.path.exists(os.path.join(
                                 idx, "pop3d.journal.bad")), run)
        tally.report()
        with open(srv.log, "rb") as f:
            log = f.read()
        T.note("mbox runs by kill moment, deleted messages gone: %s" % hows)
        T.note("at the next login: %d unfinished journals dropped, %d "
               "interrupted updates finished (%d with mail delivered "
               "since), %d found finished" % (
                   log.count(b"dropped an unfinished journal"),
                   log.count(b"finished an interrupted update"),
                   log.count(b"delivered since the interrupted update"),
                   log.count(b"interrupted update had finished")))
        T.check("mbox: server still running", srv.alive(), "")


def main():
    T.note("seed %d (POP3D_CRASH_SEED), %d runs each" % (SEED, RUNS))
    rnd = random.Random(SEED)
    maildir_loop(rnd)
    mbox_loop(rnd)


T.run(main)
