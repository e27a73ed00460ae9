/* pkt.h - PostgreSQL v3 wire format without I/O: a message builder with a sticky failure flag,
 * a bounds-checked reader for message bodies, and the protocol's constants. */
#ifndef SL_PKT_H
#define SL_PKT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_PROTO_V3 196608u        /* 3.0 */
#define SL_CANCEL_CODE 80877102u
#define SL_SSL_CODE 80877103u
#define SL_GSSENC_CODE 80877104u
#define SL_STARTUP_MAX 10000u      /* PostgreSQL's own limit for a startup packet */

static inline uint32_t sl_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static inline uint16_t sl_get_u16(const uint8_t *p) { return (uint16_t)(((unsigned)p[0] << 8) | p[1]); }
static inline void sl_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* ---- builder ---- */
typedef struct sl_pktbuf {
    uint8_t *data;
    size_t len, cap;
    size_t msg_start;  /* where the message being built starts */
    bool failed;       /* sticky: set on allocation failure, checked once before sending */
} sl_pktbuf;

void sl_pb_init(sl_pktbuf *pb);
void sl_pb_free(sl_pktbuf *pb);
void sl_pb_reset(sl_pktbuf *pb);
bool sl_pb_reserve(sl_pktbuf *pb, size_t extra);
void sl_pb_begin(sl_pktbuf *pb, char type);   /* type 0: startup-style packet without a type byte */
void sl_pb_end(sl_pktbuf *pb);                 /* patches the length of the message begun last */
void sl_pb_u8(sl_pktbuf *pb, uint8_t v);
void sl_pb_u16(sl_pktbuf *pb, uint16_t v);
void sl_pb_u32(sl_pktbuf *pb, uint32_t v);
void sl_pb_bytes(sl_pktbuf *pb, const void *p, size_t n);
void sl_pb_str(sl_pktbuf *pb, const char *s);  /* with its NUL */

/* Whole messages. */
void sl_pb_error(sl_pktbuf *pb, bool fatal, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sl_pb_error_v(sl_pktbuf *pb, const char *severity, const char *sqlstate, const char *fmt, va_list ap);
void sl_pb_notice_detail(sl_pktbuf *pb, const char *message, const char *detail); /* detail may be NULL */
void sl_pb_ready(sl_pktbuf *pb, char status);
void sl_pb_auth(sl_pktbuf *pb, uint32_t code, const void *data, size_t len);
void sl_pb_param_status(sl_pktbuf *pb, const char *name, const char *value);
/* ParameterStatus for each values[i] that is not NULL, in order, with one reservation. */
void sl_pb_param_statuses(sl_pktbuf *pb, const char *const *names, const char *const *values, int n);
void sl_pb_backend_key(sl_pktbuf *pb, uint32_t pid, uint32_t key);
void sl_pb_query(sl_pktbuf *pb, const char *sql);
void sl_pb_terminate(sl_pktbuf *pb);
/* Simple-query result helpers (admin console and synthetic answers). */
void sl_pb_row_description(sl_pktbuf *pb, int ncols, const char *const *names, const uint32_t *type_oids);
void sl_pb_data_row(sl_pktbuf *pb, int ncols, const char *const *values); /* NULL value = SQL NULL */
void sl_pb_command_complete(sl_pktbuf *pb, const char *tag);

/* ---- reader for a message body ---- */
typedef struct sl_rd {
    const uint8_t *p, *end;
    bool failed;
} sl_rd;

static inline void sl_rd_init(sl_rd *r, const void *p, size_t n)
{
    r->p = p; r->end = r->p + n; r->failed = false;
}
uint8_t sl_rd_u8(sl_rd *r);
uint16_t sl_rd_u16(sl_rd *r);
uint32_t sl_rd_u32(sl_rd *r);
const char *sl_rd_str(sl_rd *r);                   /* NUL-terminated string inside the body, or NULL */
const uint8_t *sl_rd_bytes(sl_rd *r, size_t n);
static inline size_t sl_rd_left(const sl_rd *r) { return (size_t)(r->end - r->p); }

/* ---- the startup packet ---- */
#define SL_STARTUP_MAX_PARAMS 32
typedef struct sl_startup {
    uint32_t code;          /* protocol version, or SSL/GSSENC/cancel code */
    uint32_t cancel_pid, cancel_key;
    int nparams;
    const char *names[SL_STARTUP_MAX_PARAMS];
    const char *values[SL_STARTUP_MAX_PARAMS];
} sl_startup;

typedef enum {
    SL_STARTUP_OK = 0,
    SL_STARTUP_BAD_LENGTH,
    SL_STARTUP_BAD_VERSION,
    SL_STARTUP_MALFORMED,
    SL_STARTUP_TOO_MANY_PARAMS,
} sl_startup_status;
const char *sl_startup_status_str(sl_startup_status s);

/* Parse a complete startup-style packet (len includes the 4 length bytes). Strings point into buf. */
sl_startup_status sl_startup_parse(const uint8_t *buf, size_t len, sl_startup *out);
const char *sl_startup_get(const sl_startup *s, const char *name);

/* ErrorResponse / NoticeResponse field extraction. */
const char *sl_error_field(const uint8_t *body, size_t len, char field);

#endif
