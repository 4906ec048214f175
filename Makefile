# pop3d: works with GNU make and OpenBSD make.

PREFIX?=	/usr/local
SBINDIR?=	${PREFIX}/sbin
LIBEXECDIR?=	${PREFIX}/libexec/pop3d
MANDIR?=	${PREFIX}/man
DESTDIR?=

OS!=		uname -s
CC?=		cc
YACC?=		yacc

# libbsd supplies strlcpy, explicit_bzero and friends on Linux.
CPPFLAGS_Linux!= pkg-config --cflags libbsd-overlay 2>/dev/null || true
CPPFLAGS_Linux+= -D_GNU_SOURCE
LDADD_Linux=	-lbsd
CPPFLAGS_OpenBSD=
LDADD_OpenBSD=

WARNINGS=	-Wall -Wextra -Werror -Wshadow -Wpointer-arith \
		-Wmissing-prototypes -Wstrict-prototypes -Wno-unused-parameter
CFLAGS?=	-O2 -g
CFLAGS+=	-std=gnu11 ${WARNINGS}
CPPFLAGS+=	-Icommon ${CPPFLAGS_${OS}} -DLIBEXECDIR=\"${LIBEXECDIR}\"
LDFLAGS?=

BUILD=		build

COMMON_OBJS=	common/log.o common/imsg.o common/privdrop.o common/iobuf.o \
		common/addr.o common/sandbox.o
EVENT_OBJS=	common/imsgev.o

MASTER_OBJS=	master/pop3d.o master/parse.o master/users.o \
		master/auth.o master/login_procs.o master/session.o \
		master/spawn.o master/penalty.o master/config.o \
		master/control.o master/auth_system.o
LOGIN_OBJS=	login/login.o login/conn.o login/authorization.o \
		login/relay.o login/stls.o login/sasl.o login/base64.o \
		login/plain.o
MAILBOX_OBJS=	mailbox/mailbox.o mailbox/maildir.o mailbox/index.o \
		mailbox/transaction.o mailbox/transform.o mailbox/output.o

PROGS=		${BUILD}/pop3d ${BUILD}/pop3d-login ${BUILD}/pop3d-mailbox \
		${BUILD}/pop3ctl

all: ${PROGS}

${BUILD}/pop3d: ${MASTER_OBJS} ${COMMON_OBJS} ${EVENT_OBJS}
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ ${MASTER_OBJS} ${COMMON_OBJS} ${EVENT_OBJS} \
	    -levent -lcrypt -lpthread ${LDADD_${OS}}

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
	${CC} ${LDFLAGS} -o $@ ${MAILBOX_OBJS} ${COMMON_OBJS} \
	    -lsqlite3 ${LDADD_${OS}}

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
	    ${LDADD_${OS}}

${BUILD}/test_sasl: regress/unit/test_sasl.o login/base64.o login/plain.o
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/unit/test_sasl.o login/base64.o \
	    login/plain.o ${LDADD_${OS}}

unit: ${UNIT_TESTS} ${BUILD}/mkhash

# Test helper: prints crypt(3) hashes for the users files of the tests.
${BUILD}/mkhash: regress/mkhash.o
	@mkdir -p ${BUILD}
	${CC} ${LDFLAGS} -o $@ regress/mkhash.o -lcrypt ${LDADD_${OS}}

deps:
	@sh regress/deps.sh

regress: all unit
	@sh regress/run.sh

demo: all ${BUILD}/mkhash
	@sh regress/demo.sh

install: all
	install -d ${DESTDIR}${SBINDIR} ${DESTDIR}${LIBEXECDIR}
	install -m 555 ${BUILD}/pop3d ${DESTDIR}${SBINDIR}/pop3d
	install -m 555 ${BUILD}/pop3d-login ${BUILD}/pop3d-mailbox \
	    ${DESTDIR}${LIBEXECDIR}/

clean:
	rm -rf ${BUILD} master/parse.c */*.o regress/*.o regress/unit/*.o
	rm -f ${UNIT_TESTS}

.PHONY: all unit deps regress demo install clean
