"""TLS settings from the configuration (libtls syntax): the secure default
(TLS 1.2 and 1.3 only), `tls protocols`, `tls ciphers`, `tls curves`, the
negotiated version and cipher in the log, and optional client certificates
(`tls client ca`) with AUTH EXTERNAL (RFC 4422)."""

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import loginlib as L  # noqa: E402

USERS = [("alice", "alice-pw", "bcrypt"),
         ("bob", "bob-pw", "bcrypt")]

MAIL = {
    "alice": [b"Subject: a\n\nalice\n"],
    "bob": [b"Subject: b\n\nbob\n", b"Subject: b2\n\nbob 2\n"],
}

LOW = "DEFAULT:@SECLEVEL=0"     # lets OpenSSL 3 offer TLS 1.0/1.1


def want_stat(user):
    msgs = MAIL[user]
    return b"+OK %d %d" % (len(msgs), sum(len(T.expected(m)) for m in msgs))


def deliver(srv):
    for user, msgs in MAIL.items():
        for i, m in enumerate(msgs):
            srv.deliver(user, "17000000%02d.M%dP1.test" % (i + 1, i + 1), m)


def s_client(port, *args, starttls=False, cafile=None):
    """openssl s_client to port; sends QUIT after the handshake.  Returns
    (handshake done and the server answered, version, cipher, output)."""
    cmd = ["openssl", "s_client", "-connect", "%s:%d" % (T.HOST, port),
           "-ign_eof"] + list(args)
    if cafile:
        cmd += ["-CAfile", cafile, "-verify_return_error"]
    if starttls:
        cmd += ["-starttls", "pop3"]
    try:
        r = subprocess.run(cmd, input=b"QUIT\r\n", capture_output=True,
                           timeout=30)
    except subprocess.TimeoutExpired as e:
        return False, None, None, "timed out: %r" % (e.stdout or b"")[-300:]
    out = (r.stdout + r.stderr).decode(errors="replace")
    m = re.search(r"New, (\S+), Cipher is (\S+)", out)
    version, cipher = (m.group(1), m.group(2)) if m else (None, None)
    ok = (r.returncode == 0 and cipher not in (None, "(NONE)") and
          "+OK" in r.stdout.decode(errors="replace"))
    return ok, version, cipher, out


def py_tls(srv, port=None, starttls=False, minv=None, maxv=None,
           ciphers=None, cert=None):
    """A Python TLS client: (RawConn with greeting read, or None, error)."""
    ctx = srv.context()
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    c = None
    try:
        if starttls:
            c = L.plain_conn(srv, srv.stls_port)
            r, _ = L.stls(c, ctx)
            if not r.startswith(b"+OK"):
                raise RuntimeError("STLS: %r" % r)
            # With TLS 1.3 a refused client certificate shows on the
            # first read: ask for something.
            r, lines = L.capa(c)
            c.capa_lines = lines
        else:
            s = socket.create_connection((T.HOST, port or srv.port),
                                         timeout=T.TIMEOUT)
            try:
                s = ctx.wrap_socket(s, server_hostname=T.HOST)
            except BaseException:
                s.close()
                raise
            c = T.RawConn(s)
            c.greeting = c.readline()
            r, lines = L.capa(c)
            c.capa_lines = lines
        return c, None
    except (OSError, ssl.SSLError, EOFError, ValueError,
            RuntimeError) as e:
        if c is not None:
            c.close()
        return None, e


def works(srv, what, **kw):
    c, err = py_tls(srv, **kw)
    if c is None:
        return False, "%s: %s" % (what, err)
    with c:
        r = L.login(c, "alice", "alice-pw")
        ver, cipher = c.sock.version(), c.sock.cipher()[0]
        ok = r.startswith(L.LOGGED_IN)
        L.quit(c)
    srv.wait_sessions_done()
    return ok, (ver, cipher, r)


def refused(srv, **kw):
    c, err = py_tls(srv, **kw)
    if c is None:
        return True, err
    with c:
        return False, (c.sock.version(), c.sock.cipher())


# ------------------------------------------------ the default

def control_tls11():
    """Can this openssl speak TLS 1.1 at all?  Against openssl s_server."""
    d = tempfile.mkdtemp(prefix="pop3d-tls11.")
    proc = None
    try:
        cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        T.make_cert(cert, key)
        port = T.free_port()
        proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", "%s:%d" % (T.HOST, port),
             "-cert", cert, "-key", key, "-cipher", LOW,
             "-min_protocol", "TLSv1", "-naccept", "5", "-quiet"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        for _ in range(20):
            cmd = ["openssl", "s_client", "-connect",
                   "%s:%d" % (T.HOST, port), "-tls1_1", "-cipher", LOW]
            r = subprocess.run(cmd, input=b"", capture_output=True,
                               timeout=30)
            out = r.stdout.decode(errors="replace")
            if "Protocol  : TLSv1.1" in out:
                return True
            if "connect:errno" not in out + r.stderr.decode(
                    errors="replace"):
                return False
            time.sleep(0.2)
        return False
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


def wait_log(srv, pred, timeout=3):
    def look():
        text = (T._read(srv.log, binary=True) or b"").decode(
            errors="replace")
        return pred(text.splitlines())
    return T.wait_for(look, timeout=timeout)


def test_default(srv):
    stls12 = "?"
    with T.guard("default protocols"):
        ok, info = works(srv, "TLS 1.2", maxv=ssl.TLSVersion.TLSv1_2,
                         ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
        T.check("default: a TLS 1.2 client logs in", ok and info[0] ==
                "TLSv1.2", info)
        ok, info = works(srv, "TLS 1.3", minv=ssl.TLSVersion.TLSv1_3)
        T.check("default: a TLS 1.3 client logs in", ok and info[0] ==
                "TLSv1.3", info)
        ok, info = works(srv, "STLS TLS 1.2", starttls=True,
                         maxv=ssl.TLSVersion.TLSv1_2,
                         ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
        T.check("default: STLS with TLS 1.2", ok and info[0] == "TLSv1.2",
                info)
        T.check("control: this openssl s_client can do TLS 1.1 (against "
                "openssl s_server)", control_tls11(), "it cannot: the TLS "
                "1.0/1.1 checks below prove nothing")
        for flag, name in (("-tls1_1", "TLS 1.1"), ("-tls1", "TLS 1.0")):
            ok, ver, cipher, out = s_client(srv.port, flag, "-cipher", LOW)
            T.check("default: a %s client is refused (implicit TLS)" % name,
                    not ok,
                    "%s %s %s" % (ver, cipher, out[-300:]))
            ok, ver, cipher, out = s_client(srv.stls_port, flag, "-cipher",
                                            LOW, starttls=True)
            T.check("default: a %s client is refused (STLS)" % name,
                    not ok, "%s %s %s" % (ver, cipher, out[-300:]))
        ok, ver, cipher, out = s_client(
            srv.port, "-tls1_3", "-ciphersuites",
            "TLS_CHACHA20_POLY1305_SHA256", cafile=srv.cert)
        T.check("default: openssl s_client TLS 1.3 with CHACHA20 works",
                ok and ver == "TLSv1.3" and
                cipher == "TLS_CHACHA20_POLY1305_SHA256", out[-300:])
        for v in ("-tls1_3", "-tls1_2"):
            ok, ver, cipher, out = s_client(srv.port, v, "-groups", "P-256",
                                            cafile=srv.cert)
            T.check("default curves: a client with only P-256 (%s) works "
                    "(the control for tls curves)" % v, ok, out[-300:])
        ok, ver, cipher, out = s_client(srv.stls_port, "-tls1_2",
                                        cafile=srv.cert, starttls=True)
        T.check("default: openssl s_client -starttls pop3 with TLS 1.2 works",
                ok and ver == "TLSv1.2", out[-300:])
        stls12 = cipher or "?"
    srv.wait_sessions_done()

    with T.guard("TLS in the log"):
        def count(version, cipher):
            return lambda lines: len([l for l in lines if version in l and
                                      cipher in l])
        n = wait_log(srv, count("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"))
        T.check("log: TLSv1.2 and the cipher for each TLS 1.2 session (2)",
                n >= 2, "%s lines" % n)
        n = wait_log(srv, count("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"))
        T.check("log: TLSv1.3 and TLS_CHACHA20_POLY1305_SHA256",
                n >= 1, "%s lines" % n)
        n = wait_log(srv, count("TLSv1.2", stls12))
        T.check("log: TLSv1.2 and the cipher of the -starttls session (%s)"
                % stls12, n >= 1, "%s lines" % n)


# ------------------------------------------------ tls protocols, ciphers,
#                                                   curves

def test_protocols13(srv):
    with T.guard("tls protocols tlsv1.3"):
        ok, err = refused(srv, maxv=ssl.TLSVersion.TLSv1_2)
        T.check('tls protocols "tlsv1.3": a TLS 1.2 client is refused', ok,
                err)
        ok, err = refused(srv, starttls=True, maxv=ssl.TLSVersion.TLSv1_2)
        T.check('tls protocols "tlsv1.3": a TLS 1.2 client is refused after '
                'STLS', ok, err)
        ok, ver, cipher, out = s_client(srv.port, "-tls1_2")
        T.check('tls protocols "tlsv1.3": openssl s_client -tls1_2 fails',
                not ok, "%s %s" % (ver, cipher))
        ok, info = works(srv, "TLS 1.3", minv=ssl.TLSVersion.TLSv1_3)
        T.check('tls protocols "tlsv1.3": a TLS 1.3 client logs in',
                ok and info[0] == "TLSv1.3", info)
        ok, info = works(srv, "TLS 1.3 STLS", starttls=True,
                         minv=ssl.TLSVersion.TLSv1_3)
        T.check('tls protocols "tlsv1.3": TLS 1.3 after STLS logs in',
                ok and info[0] == "TLSv1.3", info)


def test_protocols12(srv):
    with T.guard("tls protocols tlsv1.2"):
        ok, err = refused(srv, minv=ssl.TLSVersion.TLSv1_3)
        T.check('tls protocols "tlsv1.2": a TLS 1.3-only client is refused',
                ok, err)
        ok, info = works(srv, "TLS 1.2", maxv=ssl.TLSVersion.TLSv1_2)
        T.check('tls protocols "tlsv1.2": a TLS 1.2 client logs in',
                ok and info[0] == "TLSv1.2", info)


def test_ciphers(srv):
    with T.guard("tls ciphers"):
        ok, err = refused(srv, maxv=ssl.TLSVersion.TLSv1_2,
                          ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
        T.check('tls ciphers "ECDHE-ECDSA-AES256-GCM-SHA384": a TLS 1.2 '
                'client offering only ECDHE-ECDSA-AES128-GCM-SHA256 is '
                'refused', ok, err)
        ok, err = refused(srv, starttls=True, maxv=ssl.TLSVersion.TLSv1_2,
                          ciphers="ECDHE-ECDSA-CHACHA20-POLY1305")
        T.check("tls ciphers: refused after STLS too (CHACHA20 only)", ok,
                err)
        ok, info = works(srv, "AES256", maxv=ssl.TLSVersion.TLSv1_2,
                         ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
        T.check("tls ciphers: a TLS 1.2 client offering the configured "
                "cipher logs in",
                ok and info[1] == "ECDHE-ECDSA-AES256-GCM-SHA384", info)
        ok, info = works(srv, "AES256 mixed", maxv=ssl.TLSVersion.TLSv1_2)
        T.check("tls ciphers: a TLS 1.2 client offering many gets the "
                "configured one",
                ok and info[1] == "ECDHE-ECDSA-AES256-GCM-SHA384", info)


def test_curves(srv):
    with T.guard("tls curves"):
        # In TLS 1.2 the client's groups also bound the curve of the
        # server's ECDSA certificate (P-256): offer it there, after X25519.
        for v, groups in (("-tls1_3", "X25519"), ("-tls1_2", "X25519:P-256")):
            ok, ver, cipher, out = s_client(srv.port, v, "-groups", "P-256")
            T.check('tls curves "X25519": a client with only P-256 (%s) '
                    'fails' % v, not ok, "%s %s" % (ver, cipher))
            ok, ver, cipher, out = s_client(srv.port, v, "-groups", groups,
                                            cafile=srv.cert)
            T.check('tls curves "X25519": a client offering %s (%s) works, '
                    'key exchange X25519' % (groups, v),
                    ok and "Server Temp Key: X25519" in out, out[-300:])
        ok, ver, cipher, out = s_client(srv.stls_port, "-groups", "P-256",
                                        starttls=True)
        T.check('tls curves "X25519": P-256 only fails after STLS too',
                not ok, "%s %s" % (ver, cipher))
    srv.wait_sessions_done()


def test_config(srv):
    with T.guard("tls configuration"):
        for line, ok in (('tls protocols "secure"', True),
                         ('tls protocols "tlsv1.2,tlsv1.3"', True),
                         ('tls ciphers "secure"', True),
                         ('tls curves "default"', True),
                         ('tls protocols', False)):
            rc, out = L.conf_check(srv, line)
            T.check("pop3d -n: '%s' %s" % (line, "accepted" if ok else
                                            "refused"),
                    (rc == 0) == ok, "exit %d: %s" % (rc, out[-200:]))


# ------------------------------------------------ client certificates

def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (
            args[0], r.stderr.decode(errors="replace")[-300:]))


def make_pki(d):
    """A throwaway CA, client certificates for alice and carol signed by
    it, and a self-signed one for alice."""
    p = lambda n: os.path.join(d, n)               # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    openssl("req", "-x509", *ec, "-subj", "/CN=pop3d test CA", "-days", "2",
            "-keyout", p("ca.key"), "-out", p("ca.pem"),
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ext = p("client.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    for name in ("alice", "carol"):
        openssl("req", "-new", *ec, "-subj", "/CN=%s" % name,
                "-keyout", p(name + ".key"), "-out", p(name + ".csr"))
        openssl("x509", "-req", "-in", p(name + ".csr"), "-CA", p("ca.pem"),
                "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2",
                "-extfile", ext, "-out", p(name + ".pem"))
    openssl("req", "-x509", *ec, "-subj", "/CN=alice", "-days", "2",
            "-keyout", p("rogue.key"), "-out", p("rogue.pem"))
    for n in os.listdir(d):
        os.chmod(p(n), 0o644)
    return {n: (p(n + ".pem"), p(n + ".key"))
            for n in ("alice", "carol", "rogue")}


def test_client_certs(srv, certs):
    alice = certs["alice"]
    with T.guard("client certificate: implicit TLS"):
        c, err = py_tls(srv, cert=alice)
        T.check("CA-signed client certificate: handshake", c is not None,
                err)
        if c is not None:
            with c:
                T.check("with a verified client certificate: SASL PLAIN "
                        "EXTERNAL",
                        c.capa_lines == L.want_capa(login=True,
                                                    external=True),
                        c.capa_lines)
                r, m = L.auth_list(c)
                T.check("with a verified client certificate: AUTH lists "
                        "PLAIN and EXTERNAL", m == [b"PLAIN", b"EXTERNAL"], m)
                r = c.cmd(b"AUTH EXTERNAL " + L.b64("bob") + b"\r\n")
                T.check("AUTH EXTERNAL as bob with alice's certificate: -ERR "
                        "[AUTH] Authorization identity must match.",
                        r.startswith(L.AUTHZ), r)
                r = c.cmd(b"AUTH EXTERNAL =\r\n")
                T.check("AUTH EXTERNAL = logs in as alice without a password",
                        r.startswith(L.LOGGED_IN), r)
                if r.startswith(b"+OK"):
                    T.check("AUTH EXTERNAL =: alice's mailbox",
                            L.stat_line(c).startswith(want_stat("alice")),
                            "")
                L.quit(c)
        srv.wait_sessions_done()
        c, err = py_tls(srv, cert=alice)
        if c is not None:
            with c:
                r = c.cmd(b"AUTH EXTERNAL " + L.b64("alice") + b"\r\n")
                T.check("AUTH EXTERNAL base64(alice) logs in as alice",
                        r.startswith(L.LOGGED_IN), r)
                L.quit(c)
        srv.wait_sessions_done()

    with T.guard("client certificate: passwords still work"):
        c, err = py_tls(srv, cert=alice)
        if c is not None:
            with c:
                r = L.login(c, "bob", "bob-pw")
                T.check("with alice's certificate, bob logs in with his "
                        "password", r.startswith(L.LOGGED_IN), r)
                if r.startswith(b"+OK"):
                    T.check("... into bob's mailbox",
                            L.stat_line(c).startswith(want_stat("bob")), "")
                L.quit(c)
        srv.wait_sessions_done()
        c, err = py_tls(srv, cert=alice)
        if c is not None:
            with c:
                r = c.cmd(b"AUTH PLAIN " + L.plain("alice", "wrong") +
                          b"\r\n")
                T.check("with alice's certificate, a wrong PLAIN password "
                        "for alice still fails", r.startswith(L.BAD_LOGIN), r)
                L.quit(c)

    with T.guard("client certificate: STLS"):
        c, err = py_tls(srv, starttls=True, cert=alice)
        T.check("CA-signed client certificate after STLS: handshake",
                c is not None, err)
        if c is not None:
            with c:
                T.check("after STLS with a client certificate: SASL PLAIN "
                        "EXTERNAL",
                        c.capa_lines == L.want_capa(login=True,
                                                    external=True),
                        c.capa_lines)
                r = c.cmd(b"AUTH EXTERNAL =\r\n")
                T.check("after STLS: AUTH EXTERNAL = logs in as alice",
                        r.startswith(L.LOGGED_IN), r)
                if r.startswith(b"+OK"):
                    T.check("after STLS: alice's mailbox",
                            L.stat_line(c).startswith(want_stat("alice")),
                            "")
                L.quit(c)
        srv.wait_sessions_done()

    with T.guard("client certificate: none"):
        c, err = py_tls(srv)
        T.check("no client certificate: handshake (verification is "
                "optional)", c is not None, err)
        if c is not None:
            with c:
                T.check("no client certificate: SASL PLAIN, no EXTERNAL",
                        c.capa_lines == L.want_capa(login=True),
                        c.capa_lines)
                r, m = L.auth_list(c)
                T.check("no client certificate: AUTH lists PLAIN only",
                        m == [b"PLAIN"], m)
                r = c.cmd(b"AUTH EXTERNAL =\r\n")
                T.check("no client certificate: AUTH EXTERNAL: -ERR [AUTH] "
                        "No client certificate.", r.startswith(L.NO_CERT), r)
                r = L.login(c, "alice", "alice-pw")
                T.check("no client certificate: alice logs in with her "
                        "password", r.startswith(L.LOGGED_IN), r)
                L.quit(c)
        srv.wait_sessions_done()
        with L.plain_conn(srv, srv.stls_port) as c:
            r = c.cmd(b"AUTH EXTERNAL =\r\n")
            T.check("no TLS at all: AUTH EXTERNAL: -ERR [AUTH]",
                    r.startswith(b"-ERR [AUTH]"), r)

    with T.guard("client certificate: not from the CA"):
        c, err = py_tls(srv, cert=certs["rogue"])
        if c is None:
            T.check("self-signed client certificate: refused at the "
                    "handshake", True)
        else:
            with c:
                r = c.cmd(b"AUTH EXTERNAL =\r\n")
                T.check("self-signed client certificate: no EXTERNAL in "
                        "CAPA and AUTH EXTERNAL refused",
                        b"EXTERNAL" not in b" ".join(c.capa_lines or []) and
                        r.startswith(b"-ERR [AUTH]"), (c.capa_lines, r))
                L.quit(c)
        c, err = py_tls(srv, starttls=True, cert=certs["rogue"])
        if c is None:
            T.check("self-signed client certificate after STLS: refused at "
                    "the handshake", True)
        else:
            with c:
                r = c.cmd(b"AUTH EXTERNAL =\r\n")
                T.check("self-signed client certificate after STLS: no "
                        "EXTERNAL login", r.startswith(b"-ERR [AUTH]"), r)

    with T.guard("client certificate: no such user"):
        c, err = py_tls(srv, cert=certs["carol"])
        if c is not None:
            with c:
                r = c.cmd(b"AUTH EXTERNAL =\r\n")
                T.check("certificate for a user not in the users file: "
                        "AUTH EXTERNAL -ERR [AUTH]",
                        r.startswith(b"-ERR [AUTH]"), r)
                L.quit(c)
        else:
            T.check("certificate for a user not in the users file: "
                    "handshake", False, err)
    T.check("client certificates: server still running", srv.alive(), "")


def main():
    with T.Server(users=USERS, starttls=True) as srv:
        deliver(srv)
        test_default(srv)
        test_config(srv)
    with T.Server(users=USERS, starttls=True,
                  conf_extra='tls protocols "tlsv1.3"\n') as srv:
        deliver(srv)
        test_protocols13(srv)
    with T.Server(users=USERS,
                  conf_extra='tls protocols "tlsv1.2"\n') as srv:
        deliver(srv)
        test_protocols12(srv)
    with T.Server(users=USERS, starttls=True,
                  conf_extra='tls ciphers "ECDHE-ECDSA-AES256-GCM-SHA384"\n'
                  ) as srv:
        deliver(srv)
        test_ciphers(srv)
    with T.Server(users=USERS, starttls=True,
                  conf_extra='tls curves "X25519"\n') as srv:
        deliver(srv)
        test_curves(srv)
    d = tempfile.mkdtemp(prefix="pop3d-clientca.")
    try:
        os.chmod(d, 0o755)
        certs = make_pki(d)
        with T.Server(users=USERS, starttls=True,
                      conf_extra='tls client ca "%s"\n' %
                      os.path.join(d, "ca.pem")) as srv:
            deliver(srv)
            test_client_certs(srv, certs)
    finally:
        shutil.rmtree(d, ignore_errors=True)


T.run(main)
