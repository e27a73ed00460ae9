/* takeover_int.h - what the takeover's files share (private to src/core/takeover_*.c): the hand-over
 * message's buffer and reader, the donor's state, and the calls between the files.
 *
 * The protocol, over the running process's Unix socket (the admin console):
 *  1. The new process logs in to the console as "pgbouncer" (it must run as the same OS user: the
 *     console lets that user in over the Unix socket without a password) and sends `TAKEOVER <s>`.
 *  2. The old process stops accepting (new connections wait in the listen backlog) and holds new
 *     transactions, as PAUSE does: a client that sends a query waits, its query buffered. Every tick
 *     it tries to freeze each worker (a round over the workers): a worker freezes only when each of
 *     its connections is between transactions - a client idle or waiting for a server with nothing
 *     half-sent, a session-mode client with its server idle ('I', nothing owed), a server idle in its
 *     pool - and then stops polling them all and writes their state down. Until every worker froze
 *     in the same round, frozen workers thaw and it tries again, for up to <s> seconds.
 *  3. Once all froze, a sender thread writes one message ('!', length, payload: the listening
 *     sockets, then per connection its state - user, database, parameters, cancel key and slot,
 *     prepared statements, bytes it sent that were not yet served, the backend pid/key and prepared
 *     statements of servers, pool membership) and then the descriptors in SCM_RIGHTS batches. The
 *     new process builds its connections, answers 'K', and the old process exits without touching
 *     the sockets (they stay open: the new process holds them).
 *  4. Any failure before 'K' (the new process dies or times out, a client stays in a transaction
 *     too long) thaws everything: the old process accepts and serves again, and the new one exits
 *     with the reason.
 * TLS sessions (client or server side) live in OpenSSL and cannot be handed over: such a client is
 * waited for until it is between transactions, frozen with the rest, and on success closed with
 * FATAL 57P01 (its driver reconnects, to the new process); console sessions, replication connections
 * and transaction-mode clients pinned by session state (session_state.c: that state lives in the
 * backend and is not carried) are closed the same way, a pinned client's server with it.
 * The new process adopts each connection on its worker's own thread (sl_takeover_adopt, before the
 * worker polls anything) into the same worker number and slot, so that cancel keys stay valid.
 *
 * The files:
 *   takeover_wire.c     the message's format: encoding connections' state, decoding it into new ones
 *   takeover_freeze.c   per worker (round callbacks): between transactions?, freeze, thaw, finish
 *   takeover_fdpass.c   the Unix-socket transport: framed messages, descriptors in SCM_RIGHTS
 *   takeover_donor.c    the old process: TAKEOVER, the rounds on the console's worker, the sender
 *   takeover_receive.c  the new process: console login, TAKEOVER, receiving and decoding
 *   takeover_adopt.c    the new process: each worker adopts its share, on its own thread
 *   takeover_upgrade.c  UPGRADE: starting the new process from the running one */
#ifndef SL_TAKEOVER_INT_H
#define SL_TAKEOVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"
#include "core/client.h"
#include "core/server.h"
#include "net/worker.h"

#define TK_MAGIC 0x534c544bu /* "SLTK" */
#define TK_VERSION 1u
#define TK_FDS_PER_MSG 200
#define TK_MAX_PAYLOAD (1u << 30)

/* ---- the message's buffer and its reader (takeover_wire.c) ---- */

/* A growable byte buffer, with the descriptors that go along with it; oom is sticky. */
typedef struct tk_buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
    int *fds;
    size_t nfds, fdcap;
} tk_buf;

void tb_put(tk_buf *b, const void *d, size_t n);
void tb_u8(tk_buf *b, uint8_t v);
void tb_u32(tk_buf *b, uint32_t v);
void tb_u64(tk_buf *b, uint64_t v);
void tb_fd(tk_buf *b, int fd);
void tb_free(tk_buf *b);

/* A reader over a received payload; bad is sticky (reads past the end give zeros). */
typedef struct tk_rd {
    const uint8_t *p;
    size_t len, off;
    bool bad;
} tk_rd;

/* ---- encoding (old process, takeover_wire.c) ---- */

/* One connection's record; its descriptors go into b's list. */
void put_client(tk_buf *b, sl_client *c, int64_t now);
void put_server(tk_buf *b, sl_server *s, int64_t now);

/* A worker's part of the message, as written down when it froze (takeover_freeze.c). */
typedef struct tk_part {
    tk_buf buf;      /* this worker's connections, as written down when it froze */
    uint32_t nrec;
    bool ok;         /* froze in the last round */
    int busy;        /* connections not between transactions */
    char why[160];   /* one of them, for the log and the error */
} tk_part;

/* The whole payload into m (emptied first): header, the listening sockets, then each of nworkers
 * parts. *nrec, *nlisten: what it holds, for the log. false: out of memory or too big. */
bool put_message(tk_buf *m, const tk_part *parts, int nworkers, uint32_t *nrec, int *nlisten);

/* ---- decoding (new process, takeover_wire.c) ---- */

/* A connection received for a worker, adopted on its thread (sl_takeover_adopt). */
typedef struct tk_adopt {
    struct tk_adopt *next;
    sl_client *c;            /* NULL: an idle server */
    sl_server *s;            /* the idle server, or the client's linked server (session mode) */
    int old_worker;
    uint8_t *pending;        /* bytes the client sent that were not served yet */
    uint32_t npending;
    bool claimed;
    char reject_state[6];    /* non-empty: it cannot go on here; told so (FATAL) and closed */
    char reject[512];
} tk_adopt;

/* The receiving side's context: the descriptors received, in order, and counts for the log. */
typedef struct tk_in {
    const sl_config *cfg;
    int *fds;
    uint32_t nfds, next;
    int nworkers;
    int64_t now;
    unsigned clients, servers, dropped;
} tk_in;

/* Build every connection of the payload and queue it for its worker (queue_adopt), and hand the
 * listening sockets to the listener. false + err: malformed (what was built is not undone: the
 * process exits). */
bool parse_payload(tk_in *in, const uint8_t *p, size_t len, char *err, size_t errlen);

/* ---- per worker, in rounds (takeover_freeze.c) ---- */

/* The donor's state as the freeze round needs it (arg of freeze_each). */
typedef struct tk_freeze_req {
    tk_part *parts;          /* indexed by worker id */
    sl_client *console;      /* the console session that asked: frozen, not handed over */
} tk_freeze_req;

/* Round callbacks (sl_workers_round), each on its worker's thread. */
void freeze_each(sl_worker *w, void *arg);  /* arg: tk_freeze_req */
void thaw_each(sl_worker *w, void *arg);    /* thaw, still not listening */
void resume_each(sl_worker *w, void *arg);  /* thaw and listen: the takeover is off */
void finish_each(sl_worker *w, void *arg);  /* confirmed: close what was not handed over */

/* ---- the Unix-socket transport (takeover_fdpass.c) ---- */

/* Blocking send of all n bytes; -1 + errno on failure. */
int tk_write_all(int fd, const void *d, size_t n);
/* Wait until fd is ready for ev or deadline (sl_now_us) passes: 1 ready, 0 timed out, -1 error. */
int tk_deadline_wait(int fd, short ev, int64_t deadline);
/* One message from the console: type, body (malloc'd, NUL after it; free it). */
bool tk_read_msg(int fd, char *type, uint8_t **body, uint32_t *len, int64_t deadline, char *err, size_t errlen);
/* A message of type with body of n bytes. */
bool tk_send_simple(int fd, char type, const void *body, uint32_t n);
/* The descriptors, TK_FDS_PER_MSG per sendmsg (one '#' byte each). false + err. */
bool tk_send_fds(int fd, const int *fds, size_t n, char *err, size_t errlen);
/* Receive until in->nfds reaches want (extra ones are closed), into in->fds. false + err; what was
 * received is in in->fds either way. */
bool tk_recv_fds(int fd, tk_in *in, uint32_t want, int64_t deadline, char *err, size_t errlen);

/* ---- the new process's hand-over to its workers (takeover_adopt.c) ---- */

/* Before the workers start (main thread): a for worker's sl_takeover_adopt. */
void queue_adopt(int worker, tk_adopt *a);

#endif
