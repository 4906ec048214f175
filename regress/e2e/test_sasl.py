"""AUTH (RFC 5034) with SASL PLAIN (RFC 4616): the mechanism list, the
initial response and the "+ " continuation, "*" to cancel, strict base64,
the PLAIN message checks (NUL separators, empty fields, 255 octets a field,
UTF-8), the authorization identity, line lengths of AUTH lines, NULs, and
pipelining after AUTH."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402
import loginlib as L  # noqa: E402

LONGNAME = "l" * 250 + "ong55"                  # 255 octets
LONGPASS = "\u00fc" * 127 + "x"                 # 255 octets of UTF-8
UNAME = "j\u00fcrgen"
UPASS = "p\u00e4ssw\u00f6rd \u20ac"

USERS = [("alice", "alice-pw", "bcrypt"),
         ("bob", "bob-pw", "bcrypt"),
         # sha512crypt: bcrypt would look at 72 octets of the password only.
         (LONGNAME, LONGPASS, "sha512"),
         (UNAME, UPASS, "yescrypt")]

MAIL = {
    "alice": [b"Subject: a1\n\nalice one\n", b"Subject: a2\n\nalice two\n"],
    "bob": [b"Subject: b1\n\nbob one\n"],
    LONGNAME: [b"Subject: long\n\nlong name\n"],
    UNAME: [b"Subject: j\n\nj\xc3\xbcrgen\n"],
}

CONF = "failure-delay 0\nmax-auth-failures 100\n"


def want_stat(user):
    msgs = MAIL[user]
    return b"+OK %d %d" % (len(msgs), sum(len(T.expected(m)) for m in msgs))


def enc(s):
    return s.encode() if isinstance(s, str) else s


def auth_ir(srv, data, mech=b"PLAIN"):
    """AUTH mech data on a fresh TLS connection: (reply, conn) with the
    connection still open; the caller closes it."""
    c = L.tls_conn(srv)
    r = L.reply_or_close(c, b"AUTH " + mech + b" " + data + b"\r\n")
    return r, c


def auth_cont(srv, data):
    """AUTH PLAIN, then data on the continuation line: (the first reply,
    the second reply or None, conn)."""
    c = L.tls_conn(srv)
    r = L.reply_or_close(c, b"AUTH PLAIN\r\n")
    if r != L.CONTINUE:
        return r, None, c
    return r, L.reply_or_close(c, data + b"\r\n"), c


def still_serving(c):
    """The connection answers a CAPA after an error."""
    try:
        r, lines = L.capa(c)
        return r.startswith(b"+OK") and lines is not None
    except (OSError, EOFError, ValueError, T.ssl.SSLError):
        return False


def logged_in_as(c, user):
    r = L.stat_line(c)
    return r.startswith(want_stat(user)), r


def test_mechanisms(srv):
    with T.guard("AUTH alone"):
        with L.tls_conn(srv) as c:
            r, lines = L.auth_list(c)
            T.check("AUTH alone over TLS: +OK", r.startswith(b"+OK"), r)
            T.check("AUTH alone over TLS: lists PLAIN only (no client "
                    "certificate, no client CA)", lines == [b"PLAIN"], lines)
            r, caps = L.capa(c)
            T.check("CAPA over TLS: SASL PLAIN", L.mechs(caps) == [b"PLAIN"],
                    caps)
            for mech in (b"CRAM-MD5", b"LOGIN", b"DIGEST-MD5", b"PLAINX",
                         b"XOAUTH2"):
                r = c.cmd(b"AUTH " + mech + b"\r\n")
                T.check("AUTH %s: -ERR [AUTH] Unsupported SASL mechanism." %
                        mech.decode(), r.startswith(L.UNSUPPORTED), r)
            r = c.cmd(b"AUTH CRAM-MD5 " + L.b64("x") + b"\r\n")
            T.check("AUTH CRAM-MD5 with a response: unsupported",
                    r.startswith(L.UNSUPPORTED), r)
            r = c.cmd(b"AUTH EXTERNAL =\r\n")
            T.check("AUTH EXTERNAL without client certificates: -ERR [AUTH]",
                    r.startswith(b"-ERR [AUTH]"), r)
            T.check("after the refused mechanisms the connection serves",
                    still_serving(c), "")
            L.quit(c)


def test_good(srv):
    cases = [
        ("initial response", "alice", "alice-pw", b""),
        ("initial response, authzid = authcid", "alice", "alice-pw",
         b"alice"),
        ("UTF-8 user and password", UNAME, UPASS, b""),
        ("255-octet authcid, authzid and password", LONGNAME, LONGPASS,
         LONGNAME),
        ("255-octet authcid and password, empty authzid", LONGNAME,
         LONGPASS, b""),
    ]
    for what, user, pw, authzid in cases:
        data = L.plain(enc(user), enc(pw), enc(authzid))
        with T.guard("AUTH PLAIN good: " + what):
            r, c = auth_ir(srv, data)
            with c:
                T.check("AUTH PLAIN <ir> (%s, %d base64 octets): +OK Logged "
                        "in." % (what, len(data)), r.startswith(L.LOGGED_IN),
                        r)
                if r.startswith(b"+OK"):
                    ok, st = logged_in_as(c, user)
                    T.check("AUTH PLAIN <ir> (%s): the user's mailbox" %
                            what, ok, st)
                L.quit(c)
        srv.wait_sessions_done()
        with T.guard("AUTH PLAIN continuation good: " + what):
            r1, r2, c = auth_cont(srv, data)
            with c:
                T.check("AUTH PLAIN: continuation is exactly '+ ' CRLF",
                        r1 == L.CONTINUE, r1)
                T.check("AUTH PLAIN + continuation (%s, %d base64 octets): "
                        "+OK Logged in." % (what, len(data)),
                        r2 is not None and r2.startswith(L.LOGGED_IN), r2)
                if r2 is not None and r2.startswith(b"+OK"):
                    ok, st = logged_in_as(c, user)
                    T.check("AUTH PLAIN + continuation (%s): the user's "
                            "mailbox" % what, ok, st)
                L.quit(c)
        srv.wait_sessions_done()

    with T.guard("AUTH PLAIN after STLS"):
        with L.stls_conn(srv) as c:
            r = c.cmd(b"AUTH PLAIN " + L.plain("bob", "bob-pw") + b"\r\n")
            T.check("AUTH PLAIN after STLS: +OK Logged in.",
                    r.startswith(L.LOGGED_IN), r)
            if r.startswith(b"+OK"):
                ok, st = logged_in_as(c, "bob")
                T.check("AUTH PLAIN after STLS: bob's mailbox", ok, st)
                r = c.cmd(b"AUTH PLAIN " + L.plain("bob", "bob-pw") +
                          b"\r\n")
                T.check("AUTH after login: -ERR Already logged in.",
                        r.startswith(L.ALREADY), r)
            L.quit(c)
    srv.wait_sessions_done()

    with T.guard("lower-case auth command"):
        with L.tls_conn(srv) as c:
            r = c.cmd(b"auth PLAIN " + L.plain("alice", "alice-pw") + b"\r\n")
            T.check("'auth PLAIN' (command in lower case): +OK Logged in.",
                    r.startswith(L.LOGGED_IN), r)
            L.quit(c)
    srv.wait_sessions_done()

    with T.guard("UTF-8 USER/PASS"):
        with L.tls_conn(srv) as c:
            r = L.login(c, UNAME, UPASS)
            T.check("USER/PASS with a UTF-8 name and password",
                    r.startswith(L.LOGGED_IN), r)
            L.quit(c)
    srv.wait_sessions_done()


def test_pipelined(srv):
    with T.guard("AUTH PLAIN pipelined"):
        with L.tls_conn(srv) as c:
            c.send(b"AUTH PLAIN " + L.plain("alice", "alice-pw") +
                   b"\r\nSTAT\r\nLIST\r\nQUIT\r\n")
            ra = c.readline()
            rs = c.readline()
            rl = c.readline()
            body = c.multiline() if rl.startswith(b"+OK") else b""
            rq = c.readline()
            T.check("pipelined AUTH PLAIN: +OK Logged in.",
                    ra.startswith(L.LOGGED_IN), ra)
            T.check("pipelined AUTH PLAIN: then STAT", rs.startswith(
                want_stat("alice")), rs)
            want = b"".join(b"%d %d\r\n" % (i + 1, len(T.expected(m)))
                            for i, m in enumerate(MAIL["alice"])) + b".\r\n"
            T.check("pipelined AUTH PLAIN: then LIST", body == want, body)
            T.check("pipelined AUTH PLAIN: then QUIT", rq.startswith(b"+OK"),
                    rq)
    srv.wait_sessions_done()
    with T.guard("AUTH PLAIN failure pipelined"):
        with L.tls_conn(srv) as c:
            c.send(b"AUTH PLAIN " + L.plain("alice", "wrong") +
                   b"\r\nAUTH PLAIN " + L.plain("alice", "alice-pw") +
                   b"\r\nSTAT\r\nQUIT\r\n")
            rs = [c.readline() for _ in range(4)]
            T.check("pipelined: failed AUTH, good AUTH, STAT, QUIT in order",
                    rs[0].startswith(L.BAD_LOGIN) and
                    rs[1].startswith(L.LOGGED_IN) and
                    rs[2].startswith(want_stat("alice")) and
                    rs[3].startswith(b"+OK"), rs)
    srv.wait_sessions_done()


def test_refused(srv):
    good = L.plain("alice", "alice-pw")
    a256 = b"a" * 256
    bad_b64 = [
        ("a character outside the alphabet", good[:-1] + b"!"),
        ("missing padding", L.b64(b"\0alice\0alice-p").rstrip(b"=")),
        ("too much padding", good + b"===="),
        ("padding in the middle", good[:4] + b"=" + good[5:]),
        ("non-canonical last character", b"AGFsaWNlAGFsaWNlLXB="),
        ("a lone '='", b"=="),
        ("one character", b"A"),
        ("URL-safe alphabet", L.b64(b"\0alice\0\xfb\xff").replace(
            b"+", b"-").replace(b"/", b"_")),
    ]
    malformed = [
        ("no NUL", b"alicealice-pw"),
        ("one NUL", b"alice\0alice-pw"),
        ("only an authzid and a NUL", b"\0alice"),
        ("three NULs", b"\0alice\0alice-pw\0"),
        ("a NUL in the password", b"\0alice\0alice\0-pw"),
        ("empty authcid", b"\0\0alice-pw"),
        ("empty password", b"\0alice\0"),
        ("two NULs only", b"\0\0"),
        ("256-octet authcid", b"\0" + a256 + b"\0pw"),
        ("256-octet password", b"\0alice\0" + a256),
        ("256-octet authzid", a256 + b"\0alice\0alice-pw"),
        ("invalid UTF-8 in authcid", b"\0al\xffce\0alice-pw"),
        ("invalid UTF-8 in password", b"\0alice\0alice-pw\xff"),
        ("invalid UTF-8 in authzid", b"\xfe\0alice\0alice-pw"),
        ("overlong UTF-8", b"\0alice\0\xc0\xafalice-pw"),
        ("UTF-16 surrogate in UTF-8", b"\0alice\0\xed\xa0\x80alice-pw"),
        ("truncated UTF-8", b"\0alice\0alice-pw\xc3"),
    ]
    for what, data in bad_b64:
        with T.guard("bad base64: " + what):
            r, c = auth_ir(srv, data)
            with c:
                T.check("AUTH PLAIN <ir> with %s: -ERR [AUTH] Invalid base64 "
                        "data." % what, r.startswith(L.BAD_B64), r)
                T.check("the connection serves after %s" % what,
                        still_serving(c), "")
            r1, r2, c = auth_cont(srv, data)
            with c:
                T.check("AUTH PLAIN continuation with %s: -ERR [AUTH] "
                        "Invalid base64 data." % what,
                        r2 is not None and r2.startswith(L.BAD_B64),
                        (r1, r2))
    with T.guard("bad base64: white space"):
        r1, r2, c = auth_cont(srv, good[:8] + b" " + good[8:])
        with c:
            T.check("AUTH PLAIN continuation with a space inside the base64: "
                    "-ERR [AUTH] Invalid base64 data.",
                    r2 is not None and r2.startswith(L.BAD_B64), (r1, r2))
        r, c = auth_ir(srv, good[:8] + b" " + good[8:])
        with c:
            T.check("AUTH PLAIN <ir> split by a space: -ERR",
                    r.startswith(b"-ERR"), r)

    for what, msg in malformed:
        data = L.b64(msg)
        with T.guard("malformed PLAIN: " + what):
            r, c = auth_ir(srv, data)
            with c:
                T.check("AUTH PLAIN <ir> with %s: -ERR [AUTH] Malformed "
                        "PLAIN response." % what, r.startswith(L.MALFORMED),
                        r)
                T.check("the connection serves after %s" % what,
                        still_serving(c), "")
            r1, r2, c = auth_cont(srv, data)
            with c:
                T.check("AUTH PLAIN continuation with %s: -ERR [AUTH] "
                        "Malformed PLAIN response." % what,
                        r2 is not None and r2.startswith(L.MALFORMED),
                        (r1, r2))

    with T.guard("empty initial response"):
        r, c = auth_ir(srv, b"=")
        with c:
            T.check("AUTH PLAIN = (empty response): -ERR [AUTH] Malformed "
                    "PLAIN response.", r.startswith(L.MALFORMED), r)
        r1, r2, c = auth_cont(srv, b"")
        with c:
            T.check("AUTH PLAIN, empty continuation line: -ERR",
                    r2 is not None and r2.startswith(b"-ERR"), (r1, r2))

    with T.guard("cancel"):
        r1, r2, c = auth_cont(srv, b"*")
        with c:
            T.check("AUTH PLAIN then '*': -ERR Authentication cancelled.",
                    r2 is not None and r2.startswith(L.CANCELLED), (r1, r2))
            r = c.cmd(b"AUTH PLAIN " + good + b"\r\n")
            T.check("after a cancelled AUTH, AUTH PLAIN logs in",
                    r.startswith(L.LOGGED_IN), r)
            L.quit(c)
    srv.wait_sessions_done()

    authz = [
        ("another user", "alice", "alice-pw", "bob"),
        ("another user, bad password", "alice", "wrong", "bob"),
        ("a different case", "alice", "alice-pw", "Alice"),
        ("an unknown user", "alice", "alice-pw", "nobody"),
    ]
    for what, user, pw, authzid in authz:
        data = L.plain(user, pw, authzid)
        with T.guard("authzid: " + what):
            r, c = auth_ir(srv, data)
            with c:
                T.check("AUTH PLAIN <ir> with authzid %s: -ERR [AUTH] "
                        "Authorization identity must match." % what,
                        r.startswith(L.AUTHZ), r)
            r1, r2, c = auth_cont(srv, data)
            with c:
                T.check("AUTH PLAIN continuation with authzid %s: -ERR "
                        "[AUTH] Authorization identity must match." % what,
                        r2 is not None and r2.startswith(L.AUTHZ), (r1, r2))

    creds = [
        ("wrong password", "alice", "alice-pw2"),
        ("unknown user", "mallory", "alice-pw"),
        ("another user's password", "bob", "alice-pw"),
        ("a password one octet short", LONGNAME, LONGPASS[:-1]),
        ("a long password with its last octet changed", LONGNAME,
         LONGPASS[:-1] + "y"),
        ("user name in another case", "Alice", "alice-pw"),
    ]
    for what, user, pw in creds:
        data = L.plain(user, pw)
        with T.guard("bad credentials: " + what):
            r, c = auth_ir(srv, data)
            with c:
                T.check("AUTH PLAIN with a %s: -ERR [AUTH] Invalid user name "
                        "or password." % what, r.startswith(L.BAD_LOGIN), r)
                T.check("the connection serves after a %s" % what,
                        still_serving(c), "")


def test_lengths(srv):
    good = L.plain("alice", "alice-pw")
    with T.guard("AUTH line lengths"):
        with L.tls_conn(srv) as c:
            data = L.plain(LONGNAME, LONGPASS, LONGNAME)
            line = b"AUTH PLAIN " + data
            T.check("the 3 x 255 octet PLAIN line is over 1000 octets",
                    len(line) > 1000, len(line))
            junk = L.b64(b"\0alice\0" + b"p" * 1100)
            r = L.reply_or_close(c, b"AUTH PLAIN " + junk + b"\r\n")
            T.check("AUTH PLAIN with %d base64 octets: -ERR" % len(junk),
                    r.startswith(b"-ERR"), r)
            T.check("the connection serves after an overlong AUTH line",
                    still_serving(c), "")
            r = L.reply_or_close(c, b"AUTH PLAIN " + b"A" * 10000 + b"\r\n")
            T.check("AUTH PLAIN with 10000 octets: -ERR",
                    r.startswith(b"-ERR"), r)
            T.check("the connection serves after a 10000-octet AUTH line",
                    still_serving(c), "")
            r = L.reply_or_close(c, b"AUTH PLAIN\r\n")
            r2 = L.reply_or_close(c, b"A" * 10000 + b"\r\n") \
                if r == L.CONTINUE else None
            T.check("AUTH PLAIN continuation of 10000 octets: -ERR",
                    r2 is not None and r2.startswith(b"-ERR"), (r, r2))
            T.check("the connection serves after a 10000-octet continuation",
                    still_serving(c), "")
            r = L.reply_or_close(c, b"USER " + b"u" * 1000 + b"\r\n")
            T.check("a 1005-octet USER line (not AUTH): -ERR Line too long.",
                    r.startswith(L.TOO_LONG), r)
            r = L.reply_or_close(c, b"AUTH PLAIN " + good + b"\r\n")
            T.check("AUTH PLAIN after the long lines: +OK Logged in.",
                    r.startswith(L.LOGGED_IN), r)
            L.quit(c)
    srv.wait_sessions_done()

    with T.guard("NUL in AUTH"):
        with L.tls_conn(srv) as c:
            r = L.reply_or_close(c, b"AUTH PLAIN " + good[:6] + b"\0" +
                                 good[6:] + b"\r\n")
            T.check("NUL in an AUTH line: -ERR Invalid characters in "
                    "command.", r.startswith(L.BAD_CHARS), r)
            r = L.reply_or_close(c, b"AUTH PLAIN\r\n")
            r2 = L.reply_or_close(c, good[:6] + b"\0" + good[6:] + b"\r\n") \
                if r == L.CONTINUE else None
            T.check("NUL in an AUTH continuation line: -ERR",
                    r2 is not None and r2.startswith(b"-ERR"), (r, r2))
            r = L.reply_or_close(c, b"AUTH PLAIN " + good + b"\r\n")
            T.check("AUTH PLAIN after the NULs: +OK Logged in.",
                    r.startswith(L.LOGGED_IN), r)
            L.quit(c)
    srv.wait_sessions_done()


def main():
    with T.Server(users=USERS, starttls=True, conf_extra=CONF) as srv:
        for user, msgs in MAIL.items():
            for i, m in enumerate(msgs):
                srv.deliver(user, "17000000%02d.M%dP1.test" % (i + 1, i + 1),
                            m)
        logins = sorted(srv.login_pids())
        test_mechanisms(srv)
        test_good(srv)
        test_pipelined(srv)
        test_refused(srv)
        test_lengths(srv)
        L.normal_login_works(srv, "alice", "the SASL tests",
                             (2, sum(len(T.expected(m))
                                     for m in MAIL["alice"])))
        T.check("test_sasl: server still running", srv.alive(), "")
        T.check("test_sasl: no login process died",
                logins and sorted(srv.login_pids()) == logins,
                "before %s after %s" % (logins, sorted(srv.login_pids())))


T.run(main)
