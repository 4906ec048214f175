"""curl's pop3s client against the server: RETR output byte for byte, the
LIST output, and a wrong password."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402

MESSAGES = [
    ("plain", b"From: a@example.org\r\nSubject: one\r\n\r\nHello.\r\n"),
    ("bare LF and dots", b"Subject: two\n\n.\n..\n.x\nend\n"),
    ("no final newline", b"Subject: three\n\nno newline at the end"),
    ("8-bit", b"Subject: four\n\n\xc3\xa9\xff\x80\n"),
    ("biggish", b"Subject: five\n\n" + b"0123456789abcdef\n" * 20000),
]


def curl(url, *extra):
    return subprocess.run(["curl", "-sk", "--max-time", "30"] + list(extra) +
                          [url], capture_output=True, timeout=60)


def main():
    with T.Server(users=[("alice", "alice-pw", "bcrypt"),
                         ("bob", "bob-pw", "yescrypt")]) as srv:
        for i, (_, data) in enumerate(MESSAGES):
            srv.deliver("alice", "17000000%02d.M%dP1.test" % (i + 1, i + 1),
                        data)
        srv.deliver("bob", "1700000001.M1P1.test", b"Subject: bob\n\nbob\n")

        for i, (desc, data) in enumerate(MESSAGES):
            with T.guard("curl RETR %d" % (i + 1)):
                r = curl(srv.url("alice", path="%d" % (i + 1)))
                want = T.expected(data)
                T.check("curl /%d (%s): exit 0" % (i + 1, desc),
                        r.returncode == 0, "exit %d: %s" %
                        (r.returncode, r.stderr[-200:]))
                T.check("curl /%d (%s): bytes as expected" % (i + 1, desc),
                        r.stdout == want,
                        "got %d bytes %r, want %d bytes %r" %
                        (len(r.stdout), r.stdout[:60], len(want), want[:60]))
            srv.wait_sessions_done()

        with T.guard("curl LIST"):
            r = curl(srv.url("alice"))
            want = b"".join(b"%d %d\r\n" % (i + 1, len(T.expected(d)))
                            for i, (_, d) in enumerate(MESSAGES))
            T.check("curl /: exit 0", r.returncode == 0,
                    "exit %d" % r.returncode)
            T.check("curl /: one 'n size' line a message", r.stdout == want,
                    "got %r want %r" % (r.stdout, want))
        srv.wait_sessions_done()

        with T.guard("curl bob"):
            r = curl(srv.url("bob", path="1"))
            T.check("curl as bob gets bob's message",
                    r.returncode == 0 and
                    r.stdout == T.expected(b"Subject: bob\n\nbob\n"),
                    r.stdout[:60])
            r = curl(srv.url("bob", path="2"))
            T.check("curl as bob: no message 2 (exit non-zero)",
                    r.returncode != 0, "exit %d" % r.returncode)
        srv.wait_sessions_done()

        with T.guard("curl wrong password"):
            r = curl(srv.url("alice", password="wrong", path="1"))
            T.check("curl wrong password: exit 67", r.returncode == 67,
                    "exit %d, out %r" % (r.returncode, r.stdout[:60]))
            r = curl(srv.url("nobody", password="alice-pw", path="1"))
            T.check("curl unknown user: exit 67", r.returncode == 67,
                    "exit %d, out %r" % (r.returncode, r.stdout[:60]))

        with T.guard("curl DELE"):
            r = curl(srv.url("bob", path="1"), "-X", "DELE", "-I")
            T.check("curl -X DELE /1: exit 0", r.returncode == 0,
                    "exit %d" % r.returncode)
            srv.wait_sessions_done()
            T.check("curl -X DELE removed bob's message",
                    srv.messages("bob") == [], srv.messages("bob"))

        with T.guard("curl with certificate check"):
            r = subprocess.run(
                ["curl", "-s", "--max-time", "30", "--cacert", srv.cert,
                 srv.url("alice", path="1")], capture_output=True,
                timeout=60)
            T.check("curl --cacert (no -k) verifies the server",
                    r.returncode == 0 and
                    r.stdout == T.expected(MESSAGES[0][1]),
                    "exit %d" % r.returncode)
        srv.wait_sessions_done()
        T.check("server still running at the end", srv.alive(), "")


T.run(main)
