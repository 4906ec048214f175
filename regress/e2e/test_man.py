"""The manual pages in man/: mandoc -Tlint -Wwarning says nothing about
any of them; each is installed by the Makefile; and they keep up with the
code: every keyword of the pop3d.conf grammar in pop3d.conf(5), every
option of pop3d and every pop3ctl command in their pages."""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pop3dtest as T  # noqa: E402

MAN = os.path.join(T.REPO, "man")
PAGES = ["pop3d.8", "pop3d.conf.5", "pop3ctl.8"]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def lint(page):
    path = os.path.join(MAN, page)
    r = subprocess.run(["mandoc", "-Tlint", "-Wwarning", path],
                       capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace").strip()
    T.check("man: mandoc -Tlint -Wwarning %s is clean" % page,
            r.returncode == 0 and out == "",
            "exit %d: %s" % (r.returncode, out))
    text = read(path)
    sections = ["NAME", "DESCRIPTION", "SEE ALSO"]
    if page.endswith(".8"):
        sections.insert(1, "SYNOPSIS")
    for sh in sections:
        T.check("man: %s has a %s section" % (page, sh),
                re.search(r"^\.Sh %s$" % sh, text, re.M), "")
    name, sect = page.rsplit(".", 1)
    T.check("man: %s has .Dt %s %s" % (page, name.upper(), sect),
            re.search(r"^\.Dt %s %s$" % (re.escape(name.upper()), sect),
                      text, re.M), "")


def words_in_macros(text):
    """The words of the mdoc macro lines: what the page spells out."""
    out = set()
    for line in text.splitlines():
        if line.startswith("."):
            out.update(re.findall(r"[A-Za-z][A-Za-z0-9_-]*", line))
    return out


def check_keywords():
    """Each keyword of parse.y's lookup table is in pop3d.conf(5)."""
    src = read(os.path.join(T.REPO, "master", "parse.y"))
    table = re.search(r"keywords\[\]\s*=\s*\{(.*?)\};", src, re.S)
    if not T.check("man: parse.y's keyword table found", table, ""):
        return
    keywords = re.findall(r'\{\s*"([^"]+)"\s*,', table.group(1))
    have = words_in_macros(read(os.path.join(MAN, "pop3d.conf.5")))
    missing = [k for k in keywords if k not in have]
    T.check("man: pop3d.conf(5) has all %d keywords of parse.y" %
            len(keywords), not missing, "missing: %s" % missing)


def check_options():
    """Each option letter of pop3d's getopt string is in pop3d(8)."""
    src = read(os.path.join(T.REPO, "master", "pop3d.c"))
    m = re.search(r'getopt\(argc, argv, "([^"]+)"\)', src)
    if not T.check("man: pop3d's getopt string found", m, ""):
        return
    letters = m.group(1).replace(":", "")
    text = read(os.path.join(MAN, "pop3d.8"))
    missing = [c for c in letters
               if not re.search(r"^\.It Fl %s\b" % c, text, re.M)]
    T.check("man: pop3d(8) describes options -%s" % letters, not missing,
            "missing: %s" % missing)


def check_commands():
    """pop3ctl's commands, from its usage message, are in pop3ctl(8)."""
    path = os.path.join(T.REPO, "master", "pop3ctl.c")
    if not os.path.exists(path):
        T.note("no master/pop3ctl.c yet: commands not checked")
        return
    text = read(os.path.join(MAN, "pop3ctl.8"))
    have = words_in_macros(text)
    want = ["show", "sessions", "stats", "reload", "log", "verbose",
            "brief", "kick", "encrypt"]
    src = read(path)
    missing = [w for w in want if w not in have]
    unknown = [w for w in want if '"%s"' % w not in src]
    T.check("man: pop3ctl(8) has every command", not missing,
            "missing: %s" % missing)
    T.check("man: pop3ctl(8) documents only commands pop3ctl knows",
            not unknown, "not in pop3ctl.c: %s" % unknown)


def check_install():
    """make install puts every page of man/ in place."""
    mk = read(os.path.join(T.REPO, "Makefile"))
    found = sorted(p for p in os.listdir(MAN)
                   if re.match(r".+\.[1-9]$", p))
    T.check("man: man/ holds the pages %s" % PAGES,
            sorted(PAGES) == found, "found %s" % found)
    missing = [p for p in found if "man/" + p not in mk]
    T.check("man: the Makefile installs every page", not missing,
            "missing: %s" % missing)


def main():
    if shutil.which("mandoc") is None:
        T.check("man: mandoc installed", False, "not found; run make deps")
        return
    for page in PAGES:
        with T.guard("man: %s" % page):
            lint(page)
    with T.guard("man: keywords"):
        check_keywords()
    with T.guard("man: options"):
        check_options()
    with T.guard("man: commands"):
        check_commands()
    with T.guard("man: install"):
        check_install()


T.run(main)
