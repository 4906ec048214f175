"""Real mail retrieval clients: fetchmail keeps the mail, mpop (which
pipelines) fetches and deletes it.  Both deliver with LF line endings."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402

MESSAGES = [
    b"From: a@example.org\r\nSubject: one\r\n\r\nHello.\r\n",
    b"From: b@example.org\nSubject: two\n\n.\n..\n.x\nend\n",
    b"From: c@example.org\nSubject: three\n\nno newline at the end",
    b"From: d@example.org\nSubject: four\n\n" + b"line of text\n" * 5000,
]


def lf(data):
    """A message as a client delivers it: expected() with LF endings."""
    return T.expected(data).replace(b"\r\n", b"\n")


def strip_received(msg):
    """Drop the Received: header fetchmail puts in front."""
    lines = msg.split(b"\n")
    if not lines[0].startswith(b"Received:"):
        return msg
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\n".join(lines[i:])


def read_all(d):
    out = []
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out.append(f.read())
    return out


def test_fetchmail(srv):
    with T.guard("fetchmail"):
        dest = os.path.join(srv.tmp, "fetchmail-out")
        os.mkdir(dest)
        rc = os.path.join(srv.tmp, "fetchmailrc")
        with open(rc, "w") as f:
            f.write('set no syslog\nset idfile "%s/fetchids"\n' % srv.tmp)
            f.write("poll 127.0.0.1 protocol pop3 port %d timeout 30\n" %
                    srv.port)
            f.write('  user "alice" there with password "alice-pw" '
                    'is "root" here\n')
            f.write('  ssl sslcertck sslcertfile "%s" '
                    'sslcommonname "localhost" keep fetchall\n' % srv.cert)
            # One file a message, named in order of delivery.
            f.write('  mda "/bin/sh -c \'cat > %s/$(date +%%s%%N)\'"\n' %
                    dest)
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=srv.tmp, FETCHMAILHOME=srv.tmp)
        r = subprocess.run(["fetchmail", "-f", rc, "-N", "-v",
                            "--pidfile", os.path.join(srv.tmp, "fm.pid")],
                           capture_output=True, timeout=60, env=env)
        T.check("fetchmail exits 0", r.returncode == 0,
                "exit %d: %s" % (r.returncode, r.stdout[-300:]))
        got = [strip_received(m) for m in read_all(dest)]
        T.check("fetchmail got %d messages" % len(MESSAGES),
                len(got) == len(MESSAGES), "got %d" % len(got))
        # The MDA's file names need not sort in delivery order.
        for i, m in enumerate(MESSAGES):
            T.check("fetchmail message %d as expected" % (i + 1),
                    lf(m) in got, "want %r" % lf(m)[:60])
    srv.wait_sessions_done()
    T.check("fetchmail keep: mail still on the server",
            len(srv.messages("alice")) == len(MESSAGES),
            srv.messages("alice"))


def test_mpop(srv):
    with T.guard("mpop"):
        dest = os.path.join(srv.tmp, "mpop-out")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(dest, sub))
        cmd = ["mpop", "--host=127.0.0.1", "--port=%d" % srv.port,
               "--tls=on", "--tls-starttls=off",
               "--tls-trust-file=" + srv.cert, "--auth=user",
               "--user=alice", "--passwordeval=echo alice-pw",
               "--delivery=maildir," + dest, "--keep=off",
               "--received-header=off",
               "--uidls-file=" + os.path.join(srv.tmp, "mpop-uidls"),
               "--timeout=30", "-q"]
        env = dict(os.environ, HOME=srv.tmp)
        r = subprocess.run(cmd, capture_output=True, timeout=60, env=env)
        T.check("mpop exits 0", r.returncode == 0,
                "exit %d: %s" % (r.returncode, r.stderr[-300:]))
        got = read_all(os.path.join(dest, "new"))
        T.check("mpop got %d messages" % len(MESSAGES),
                len(got) == len(MESSAGES), "got %d" % len(got))
        # mpop names files by time: compare as sets of messages.
        want = sorted(lf(m) for m in MESSAGES)
        T.check("mpop messages as expected", sorted(got) == want,
                "got %s" % [g[:40] for g in got])
    srv.wait_sessions_done()
    T.check("mpop --keep=off: the server's Maildir is empty",
            srv.messages("alice") == [], srv.messages("alice"))


def main():
    with T.Server(users=[("alice", "alice-pw", "yescrypt")]) as srv:
        for i, m in enumerate(MESSAGES):
            srv.deliver("alice", "17000000%02d.M%dP1.test" % (i + 1, i + 1),
                        m)
        test_fetchmail(srv)
        test_mpop(srv)
        T.check("server still running at the end", srv.alive(), "")


T.run(main)
