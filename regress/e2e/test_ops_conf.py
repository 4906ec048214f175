"""pop3d -n: a good configuration passes ("configuration OK", exit 0), bad
ones fail with exit 1 and file:line: messages; -D macro=value defines a
macro for the file, for -n and for a running server (and its reloads)."""

import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import opslib as O  # noqa: E402


def conf_check(path, *args):
    return O.run([O.POP3D, "-n"] + list(args) + ["-f", path])


class Files:
    """A temp dir with a certificate, a users file and a chroot dir."""

    def __init__(self):
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="pop3d-conf."))
        os.chmod(self.dir, 0o755)
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        T.make_cert(self.cert, self.key)
        self.users = os.path.join(self.dir, "users")
        O.write_file(self.users, "# nobody\n")
        self.chroot = os.path.join(self.dir, "empty")
        os.mkdir(self.chroot, 0o755)

    def conf(self, name, body):
        path = os.path.join(self.dir, name)
        O.write_file(path, body)
        return path

    def head(self):
        return ('pki localhost cert "%s"\n'
                'pki localhost key "%s"\n' % (self.cert, self.key))

    def tail(self):
        return ('auth passwd "%s"\n'
                'user "%s"\n'
                'chroot "%s"\n' % (self.users, T.UNPRIV, self.chroot))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def expect_ok(name, path, *args):
    r = conf_check(path, *args)
    T.check("%s: exit 0" % name, r.rc == 0, r)
    T.check("%s: says configuration OK" % name,
            "configuration OK" in r.err + r.out, r)
    return r


def expect_bad(name, path, lines, words=(), *args):
    """Exit 1 and, for each line number, a "path:line:" message; each
    of words somewhere in the messages."""
    r = conf_check(path, *args)
    T.check("%s: exit 1" % name, r.rc == 1, r)
    for n in lines:
        T.check("%s: message names %s:%d:" % (name,
                                              os.path.basename(path), n),
                re.search(r"(^|\s)%s:%d:" % (re.escape(path), n), r.err,
                          re.M) is not None, r)
    for w in words:
        T.check("%s: message mentions %r" % (name, w), w in r.err, r)
    T.check("%s: does not say configuration OK" % name,
            "configuration OK" not in r.err + r.out, r)
    return r


def test_good(fs):
    port = T.free_port()
    body = (fs.head() +
            "# a comment\n"
            "listen on 127.0.0.1 port %d tls pki localhost\n" % port +
            "listen on 127.0.0.1 port %d\n" % (port + 1 if port < 65535
                                               else port - 1) +
            fs.tail() +
            "maildrop maildir \"~/Maildir\"\n"
            "login-processes 2\n"
            "implementation no\n"
            "failure-delay 2s\n"
            "timeout 10m\n"
            "control socket \"%s/ctl.sock\"\n" % fs.dir +
            "auth system\n")
    with T.guard("-n good"):
        expect_ok("-n good file", fs.conf("good.conf", body))

    with T.guard("-n example"):
        expect_ok("-n etc/pop3d.conf (the example)",
                  os.path.join(T.REPO, "etc", "pop3d.conf"))

    with T.guard("-n include"):
        inc = fs.conf("inc.conf", fs.tail())
        body = (fs.head() +
                "listen on 127.0.0.1 port %d tls pki localhost\n" % port +
                'include "%s"\n' % inc)
        expect_ok("-n good file with include", fs.conf("main.conf", body))


def test_bad(fs):
    port = T.free_port()
    listen = "listen on 127.0.0.1 port %d tls pki localhost\n" % port

    with T.guard("-n syntax error"):
        # line 3: an unknown keyword
        path = fs.conf("bad1.conf",
                       fs.head() + "frobnicate yes\n" + listen + fs.tail())
        expect_bad("-n unknown keyword", path, [3])

    with T.guard("-n two bad lines"):
        # lines 4 and 6: each is reported
        path = fs.conf("bad2.conf",
                       fs.head() + listen +
                       "login-processes 0\n" +
                       'user "%s"\n' % T.UNPRIV +
                       "timeout 5s\n" +
                       fs.tail())
        expect_bad("-n two bad values", path, [4, 6],
                   ["login-processes", "timeout"])

    with T.guard("-n port out of range"):
        path = fs.conf("bad3.conf", fs.head() +
                       "listen on 127.0.0.1 port 70000 tls pki localhost\n" +
                       fs.tail())
        expect_bad("-n port 70000", path, [3], ["70000"])

    with T.guard("-n undefined macro"):
        path = fs.conf("bad4.conf", fs.head() +
                       "listen on $nosuch port %d tls pki localhost\n" % port
                       + fs.tail())
        expect_bad("-n undefined macro", path, [3], ["nosuch"])

    with T.guard("-n unknown pki"):
        path = fs.conf("bad5.conf", fs.head() +
                       "listen on 127.0.0.1 port %d tls pki other\n" % port +
                       fs.tail())
        expect_bad("-n listen with an unknown pki", path, [3], ["other"])

    with T.guard("-n unterminated string"):
        path = fs.conf("bad6.conf", fs.head() + listen +
                       'auth passwd "%s\n' % fs.users +
                       'user "%s"\n' % T.UNPRIV)
        expect_bad("-n unterminated string", path, [4])

    with T.guard("-n error in an included file"):
        inc = fs.conf("badinc.conf", 'user "%s"\nlisten on\n' % T.UNPRIV)
        path = fs.conf("bad7.conf", fs.head() + listen +
                       'include "%s"\n' % inc)
        r = conf_check(path)
        T.check("-n error in an included file: exit 1", r.rc == 1, r)
        T.check("-n error in an included file: names %s:2:" %
                os.path.basename(inc),
                re.search(r"%s:2:" % re.escape(inc), r.err) is not None, r)

    with T.guard("-n no listener"):
        path = fs.conf("bad8.conf", fs.head() + fs.tail())
        r = conf_check(path)
        T.check("-n without listen on: exit 1", r.rc == 1, r)
        T.check("-n without listen on: says so", "listen" in r.err, r)

    with T.guard("-n missing file"):
        r = conf_check(os.path.join(fs.dir, "does-not-exist.conf"))
        T.check("-n with a missing file: exit 1", r.rc == 1, r)
        T.check("-n with a missing file: no configuration OK",
                "configuration OK" not in r.err + r.out, r)


def test_macros(fs):
    port = T.free_port()
    body = (fs.head() +
            "listen on $addr port $port tls pki localhost\n" +
            fs.tail())
    path = fs.conf("macro.conf", body)
    with T.guard("-D"):
        expect_ok("-n with -D addr and -D port", path,
                  "-D", "addr=127.0.0.1", "-D", "port=%d" % port)
        expect_bad("-n without the -D macros", path, [3], ["addr"])
        # The value is really used: a bad one is rejected where used.
        expect_bad("-n with -D port=70000", path, [3], ["70000"],
                   "-D", "addr=127.0.0.1", "-D", "port=70000")
        r = conf_check(path, "-D", "addr=no.such.host.invalid",
                       "-D", "port=%d" % port)
        T.check("-n with -D addr=<unresolvable>: exit 1", r.rc == 1, r)

        # -D wins over the file's own definition, as in OpenBSD daemons.
        path2 = fs.conf("macro2.conf", 'addr = "no.such.host.invalid"\n' +
                        body)
        expect_ok("-n with -D overriding the file's macro", path2,
                  "-D", "addr=127.0.0.1", "-D", "port=%d" % port)

        r = conf_check(path, "-D", "addr")
        T.check("-n with -D without '=': exit 1", r.rc == 1, r)
        r = conf_check(path, "-D", "bad-name=1")
        T.check("-n with -D of an invalid name: exit 1", r.rc == 1, r)


def test_macro_server():
    """A running server started with -D: the macro places the listener,
    and stays defined for a reload."""
    port = T.free_port()
    extra = O.NO_DELAY + "listen on $addr port $ctlport tls pki localhost\n"
    with T.Server(control=True, conf_extra=extra,
                  args=["-D", "addr=127.0.0.1",
                        "-D", "ctlport=%d" % port]) as srv:
        with T.guard("-D on a running server"):
            g = T.wait_for(lambda: _greet(port), 10)
            T.check("-D: the listener from $addr/$ctlport greets",
                    g.startswith(b"+OK"), g)
            r = O.ctl(srv, "reload")
            T.check("-D: a reload keeps the -D macros (pop3ctl reload "
                    "succeeds)", r.rc == 0 and "reloaded" in r.out, r)
            g = T.wait_for(lambda: _greet(port), 10)
            T.check("-D: the $ctlport listener still greets after reload",
                    g.startswith(b"+OK"), g)


def _greet(port):
    try:
        return O.greeting(port)
    except (OSError, EOFError, T.ssl.SSLError):
        return b""


def main():
    fs = Files()
    try:
        test_good(fs)
        test_bad(fs)
        test_macros(fs)
    finally:
        fs.cleanup()
    test_macro_server()


T.run(main)
