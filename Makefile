# pop3d: works with GNU make and OpenBSD make.

PREFIX?=	/usr/local
SBINDIR?=	${PREFIX}/sbin
LIBEXECDIR?=	${PREFIX}/libexec/pop3d
MANDIR?=	${PREFIX}/man
EXAMPLEDIR?=	${PREFIX}/share/examples/pop3d
DESTDIR?=

MAN5=		man/pop3d.conf.5
MAN8=		man/pop3d.8 man/pop3ctl.8
EXAMPLES=	etc/pop3d.conf etc/users etc/pop3d.rc etc/pop3d.service

OS!=		uname -s
CC?=		cc
YACC?=		yacc

# libbsd supplies strlcpy, explicit_bzero and friends on Linux.
CPPFLAGS_Linux!= pkg-config --cflags libbsd-overlay 2>/dev/null || true
CPPFLAGS_Linux+= -D_GNU_SOURCE
LDADD_Linux=	-lbsd
# SHA-256 (sha2.h) is in libc on OpenBSD, in libmd on Linux: the mbox
# UIDLs and the master's auth cache.
LIBMD_Linux=	-lmd
CPPFLAGS_OpenBSD=
LDADD_OpenBSD=

WARNINGS=	-Wall -Wextra -Werror -Wshadow -Wpointer-arith \
		-Wmissing-prototypes -Wstrict-prototypes -Wno-unused-parameter
CFLAGS?=	-O2 -g
CFLAGS+=	-std=gnu11 ${WARNINGS}
CPPFLAGS+=	-Icommon ${CPPFLAGS_${OS}} -DLIBEXECDIR=\"${LIBEXECDIR}\"
LDFLAGS?=
# SANITIZE=1: AddressSanitizer and UndefinedBehaviorSanitizer, every
# report fatal (see make sanitize).
SANITIZE?=	0
SANITIZE_FLAGS_1= -fsanitize=address,undefined -fno-sanitize-recover=all \
		-fno-omit-frame-pointer
CFLAGS+=	${SANITIZE_FLAGS_${SANITIZE}}
LDFLAGS+=	${SANITIZE_FLAGS_${SANITIZE}}

BUILD=		build

# MAILBOX_STATIC=yes (the default on Linux): pop3d-mailbox, one process
# a session, linked -static-pie: no dynamic loading and relocation of
# libc, libsqlite3 and libm at each start, fewer pages mapped.  A fix in
# SQLite or libc then needs a rebuild.  Never with the sanitizers.
MAILBOX_STATIC_Linux= yes
MAILBOX_STATIC?=	${MAILBOX_STATIC_${OS}}
MAILBOX_LDFLAGS_yes0= -static-pie
MAILBOX_LDFLAGS=	${MAILBOX_LDFLAGS_${MAILBOX_STATIC}${SANITIZE}}

COMMON_OBJS=	common/log.o common/imsg.o common/privdrop.o common/iobuf.o \
		common/addr.o common/sandbox.o
EVENT_OBJS=	common/imsgev.o

MASTER_OBJS=	master/pop3d.o master/parse.o master/users.o \
		master/auth.o master/login_procs.o master/session.o \
		master/spawn.o master/penalty.o master/config.o \
		master/control.o master/auth_system.o master/auth_cache.o
LOGIN_OBJS=	login/login.o login/conn.o login/authorization.o \
		login/relay.o login/stls.o login/sasl.o login/base64.o \
		login/plain.o
MAILBOX_OBJS=	mailbox/mailbox.o mailbox/maildir.o mailbox/index.o \
		mailbox/transaction.o mailbox/transform.o mailbox/output.o
MAILBOX_OBJS+=	mailbox/message.o mailbox/unfrom.o mailbox/top.o \
		mailbox/mbox.o mailbox/mboxlock.o mailbox/mboxupdate.o \
		mailbox/arena.o mailbox/uidl.o mailbox/measure.o \
		mailbox/filestate.o

PROGS=		${BUILD}/pop3d ${BUILD}/pop3d-login ${BUILD}/pop3d-mailbox \
		${BUILD}/pop3ctl

all: ${PROGS}

${BUILD}/pop3d: ${MASTER_OBJS} ${COMMON_OBJS} ${EVENT_OBJS}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ ${MASTER_OBJS} ${COMMON_OBJS} ${EVENT_OBJS} \
	    -levent -lcrypt -lpthread ${LIBMD_${OS}} ${LDADD_${OS}}

${BUILD}/pop3ctl: master/pop3ctl.o common/imsg.o common/log.o
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ master/pop3ctl.o common/imsg.o common/log.o \
	    -lcrypt ${LDADD_${OS}}

${BUILD}/pop3d-login: ${LOGIN_OBJS} ${COMMON_OBJS} ${EVENT_OBJS}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ ${LOGIN_OBJS} ${COMMON_OBJS} ${EVENT_OBJS} \
	    -ltls -levent ${LDADD_${OS}}

${BUILD}/pop3d-mailbox: ${MAILBOX_OBJS} ${COMMON_OBJS}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} ${MAILBOX_LDFLAGS} -o $@ ${MAILBOX_OBJS} \
	    ${COMMON_OBJS} -lsqlite3 ${LIBMD_${OS}} ${LDADD_${OS}} -lm -lpthread

master/parse.c: master/parse.y
	${YACC} -o $@ master/parse.y

.c.o:
	${CC} ${CFLAGS} ${CPPFLAGS} -c -o $@ $<

# Every object depends on the shared headers; small enough to keep simple.
${COMMON_OBJS} ${EVENT_OBJS} ${MASTER_OBJS} ${LOGIN_OBJS} ${MAILBOX_OBJS}: \
    common/log.h common/imsg.h common/imsgev.h common/proto.h \
    common/privdrop.h common/iobuf.h common/addr.h \
    common/sandbox.h
${MASTER_OBJS}: master/pop3d.h master/users.h master/master.h
${LOGIN_OBJS}: login/login.h login/sasl.h
${MAILBOX_OBJS}: mailbox/mailbox.h
regress/unit/test_users.o regress/unit/test_parse.o: master/pop3d.h master/users.h
regress/unit/test_sasl.o: login/sasl.h

# Unit tests: each prints "PASS: name" or "FAIL: name" lines.
UNIT_TESTS=	${BUILD}/test_imsg ${BUILD}/test_users ${BUILD}/test_parse \
		${BUILD}/test_transform ${BUILD}/test_sasl ${BUILD}/test_sandbox

${BUILD}/test_imsg: regress/unit/test_imsg.o ${COMMON_OBJS} ${EVENT_OBJS}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/unit/test_imsg.o ${COMMON_OBJS} \
	    ${EVENT_OBJS} -levent ${LDADD_${OS}}

${BUILD}/test_users: regress/unit/test_users.o master/users.o ${COMMON_OBJS}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/unit/test_users.o master/users.o \
	    ${COMMON_OBJS} ${LDADD_${OS}}

${BUILD}/test_parse: regress/unit/test_parse.o master/parse.o ${COMMON_OBJS}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/unit/test_parse.o master/parse.o \
	    ${COMMON_OBJS} ${LDADD_${OS}}

${BUILD}/test_transform: regress/unit/test_transform.o mailbox/transform.o
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/unit/test_transform.o \
	    mailbox/transform.o

${BUILD}/test_sandbox: regress/unit/test_sandbox.o ${COMMON_OBJS}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/unit/test_sandbox.o ${COMMON_OBJS} \
	    ${LDADD_${OS}} -lpthread

${BUILD}/test_sasl: regress/unit/test_sasl.o login/base64.o login/plain.o
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/unit/test_sasl.o login/base64.o \
	    login/plain.o ${LDADD_${OS}}

unit: ${UNIT_TESTS} ${BUILD}/mkhash

# The mbox unescape and TOP's limit, pure like the transform.
unit: ${BUILD}/test_filters
${BUILD}/test_filters: regress/unit/test_filters.o mailbox/unfrom.o \
    mailbox/top.o
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/unit/test_filters.o mailbox/unfrom.o \
	    mailbox/top.o
regress/unit/test_filters.o: mailbox/mailbox.h

# The fuzz targets of regress/fuzz, built with the project's compiler and
# regress/fuzz/replay.c: each runs its seed corpus and saved crashes once.
# Their objects are listed again, as sources, in regress/fuzz/run.sh.
FUZZ_REPLAY=	regress/fuzz/replay.o regress/fuzz/fuzzlib.o
FUZZ_PROGS=	${BUILD}/test_fuzz_sasl ${BUILD}/test_fuzz_transform \
		${BUILD}/test_fuzz_parse ${BUILD}/test_fuzz_users \
		${BUILD}/test_fuzz_imsg ${BUILD}/test_fuzz_master \
		${BUILD}/test_fuzz_login_cmd ${BUILD}/test_fuzz_mbox \
		${BUILD}/test_fuzz_maildir
FUZZ_SASL=	login/base64.o login/plain.o
FUZZ_TRANSFORM=	mailbox/transform.o
FUZZ_PARSE=	master/parse.o common/log.o
FUZZ_USERS=	master/users.o common/log.o
FUZZ_IMSG=	common/imsg.o
FUZZ_MASTER=	master/login_procs.o master/session.o master/control.o \
		common/imsgev.o common/imsg.o common/log.o common/addr.o
FUZZ_LOGIN_CMD=	login/authorization.o login/sasl.o login/stls.o \
		login/base64.o login/plain.o common/iobuf.o common/log.o
FUZZ_MBOX=	mailbox/mbox.o mailbox/unfrom.o mailbox/transform.o \
		mailbox/arena.o mailbox/filestate.o common/log.o
unit: ${FUZZ_PROGS}
${BUILD}/test_fuzz_sasl: regress/fuzz/fuzz_sasl.o ${FUZZ_REPLAY} ${FUZZ_SASL}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/fuzz/fuzz_sasl.o ${FUZZ_REPLAY} \
	    ${FUZZ_SASL} ${LDADD_${OS}}
${BUILD}/test_fuzz_transform: regress/fuzz/fuzz_transform.o ${FUZZ_REPLAY} \
    ${FUZZ_TRANSFORM}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/fuzz/fuzz_transform.o ${FUZZ_REPLAY} \
	    ${FUZZ_TRANSFORM} ${LDADD_${OS}}
${BUILD}/test_fuzz_parse: regress/fuzz/fuzz_parse.o ${FUZZ_REPLAY} \
    ${FUZZ_PARSE}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/fuzz/fuzz_parse.o ${FUZZ_REPLAY} \
	    ${FUZZ_PARSE} ${LDADD_${OS}}
${BUILD}/test_fuzz_users: regress/fuzz/fuzz_users.o ${FUZZ_REPLAY} \
    ${FUZZ_USERS}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/fuzz/fuzz_users.o ${FUZZ_REPLAY} \
	    ${FUZZ_USERS} ${LDADD_${OS}}
${BUILD}/test_fuzz_imsg: regress/fuzz/fuzz_imsg.o ${FUZZ_REPLAY} ${FUZZ_IMSG}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/fuzz/fuzz_imsg.o ${FUZZ_REPLAY} \
	    ${FUZZ_IMSG} ${LDADD_${OS}}
${BUILD}/test_fuzz_master: regress/fuzz/fuzz_master.o ${FUZZ_REPLAY} \
    ${FUZZ_MASTER}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/fuzz/fuzz_master.o ${FUZZ_REPLAY} \
	    ${FUZZ_MASTER} -levent ${LDADD_${OS}}
${BUILD}/test_fuzz_login_cmd: regress/fuzz/fuzz_login_cmd.o ${FUZZ_REPLAY} \
    ${FUZZ_LOGIN_CMD}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/fuzz/fuzz_login_cmd.o ${FUZZ_REPLAY} \
	    ${FUZZ_LOGIN_CMD} -ltls -levent ${LDADD_${OS}}
${BUILD}/test_fuzz_maildir: regress/fuzz/fuzz_maildir.o ${FUZZ_REPLAY} \
    mailbox/uidl.o
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/fuzz/fuzz_maildir.o ${FUZZ_REPLAY} \
	    mailbox/uidl.o ${LDADD_${OS}}
${BUILD}/test_fuzz_mbox: regress/fuzz/fuzz_mbox.o ${FUZZ_REPLAY} ${FUZZ_MBOX}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/fuzz/fuzz_mbox.o ${FUZZ_REPLAY} \
	    ${FUZZ_MBOX} ${LIBMD_${OS}} ${LDADD_${OS}}
${FUZZ_REPLAY} regress/fuzz/fuzz_sasl.o regress/fuzz/fuzz_transform.o \
    regress/fuzz/fuzz_parse.o regress/fuzz/fuzz_users.o \
    regress/fuzz/fuzz_imsg.o regress/fuzz/fuzz_master.o \
    regress/fuzz/fuzz_login_cmd.o regress/fuzz/fuzz_mbox.o \
    regress/fuzz/fuzz_maildir.o: \
    regress/fuzz/fuzz.h common/log.h \
    common/imsg.h common/proto.h common/iobuf.h master/pop3d.h \
    master/users.h master/master.h login/login.h login/sasl.h \
    mailbox/mailbox.h

# Test helper: prints crypt(3) hashes for the users files of the tests.
${BUILD}/mkhash: regress/mkhash.o
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/mkhash.o -lcrypt ${LDADD_${OS}}

# Fuzzing with clang and libFuzzer (make deps installs them): each target
# of regress/fuzz/run.sh, built into ${BUILD}/fuzz, runs FUZZ_TIME seconds;
# FUZZ_TARGETS="fuzz_sasl ..." picks some.  Not part of make regress.
FUZZ_TIME?=	60
FUZZ_CC?=	clang
FUZZ_TARGETS?=

fuzz: master/parse.c
	@CPPFLAGS="${CPPFLAGS}" WARNINGS="${WARNINGS}" LDADD="${LDADD_${OS}}" \
	    LIBMD="${LIBMD_${OS}}" \
	    BUILD="${BUILD}" FUZZ_CC="${FUZZ_CC}" FUZZ_TIME="${FUZZ_TIME}" \
	    sh regress/fuzz/run.sh ${FUZZ_TARGETS}

deps:
	@sh regress/deps.sh

# Everything again, with the sanitizers, in place of the normal build; a
# make regress after it runs under them (ASAN_OPTIONS etc. in run.sh).
sanitize:
	${MAKE} clean
	${MAKE} SANITIZE=1 all unit

regress: all unit
	@sh regress/run.sh

demo: all ${BUILD}/mkhash
	@sh regress/demo.sh

# pop3d beside Dovecot (installed if missing), as root: regress/bench.
# The load generator is built here only, never by all or regress.
LOADGEN_LDADD_Linux= -lcrypt
${BUILD}/loadgen: regress/bench/loadgen.c
	@mkdir -p ${BUILD}
	${CC} ${CFLAGS} ${CPPFLAGS} ${LDFLAGS} -o $@ regress/bench/loadgen.c \
	    -ltls -levent ${LOADGEN_LDADD_${OS}} ${LDADD_${OS}}

bench: all ${BUILD}/loadgen
	@python3 regress/bench/bench.py

# Configuration is never installed over: etc/ goes to EXAMPLEDIR, to copy
# from (/etc/pop3d.conf, /etc/rc.d/pop3d, /etc/systemd/system).
install: all
	install -d ${DESTDIR}${SBINDIR} ${DESTDIR}${LIBEXECDIR}
	install -m 555 ${BUILD}/pop3d ${DESTDIR}${SBINDIR}/pop3d
	install -m 555 ${BUILD}/pop3ctl ${DESTDIR}${SBINDIR}/pop3ctl
	install -m 555 ${BUILD}/pop3d-login ${BUILD}/pop3d-mailbox \
	    ${DESTDIR}${LIBEXECDIR}/
	install -d ${DESTDIR}${MANDIR}/man5 ${DESTDIR}${MANDIR}/man8
	install -m 444 ${MAN5} ${DESTDIR}${MANDIR}/man5/
	install -m 444 ${MAN8} ${DESTDIR}${MANDIR}/man8/
	install -d ${DESTDIR}${EXAMPLEDIR}
	install -m 444 ${EXAMPLES} ${DESTDIR}${EXAMPLEDIR}/

clean:
	rm -rf ${BUILD} master/parse.c */*.o regress/*.o regress/unit/*.o \
	    regress/fuzz/*.o
	rm -f ${UNIT_TESTS}

.PHONY: all unit deps regress demo install clean fuzz sanitize bench

# The mailbox process with 100,000 messages (Maildir and mbox): session
# times, peak memory, system calls on message files.  Root; not regress.
bench-mailbox: all
	@python3 regress/bench/bench_mailbox.py
.PHONY: bench-mailbox
