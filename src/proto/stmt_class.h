/* stmt_class.h - what a statement does to the session beyond its transaction, read from its text for
 * transaction pooling: SET / RESET of a parameter (with the value in the form the server keeps it),
 * and state that pins a client to its server (session advisory locks, temporary tables, cursors WITH
 * HOLD, LISTEN, SQL PREPARE, settings pgsluice cannot track) or that ends it (pg_advisory_unlock_all,
 * DISCARD, UNLISTEN *, DEALLOCATE ALL, CLOSE ALL). A small lexer (comments, quoted strings and
 * identifiers, dollar quotes) and the leading keywords of each statement: no full SQL parser, and
 * what is not understood errs on the side of pinning. No I/O. */
#ifndef SL_STMT_CLASS_H
#define SL_STMT_CLASS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a client is pinned to its server. X-macro: C name, name shown in SHOW CLIENTS and /metrics. */
#define SL_PIN_REASONS(X)                 \
    X(ADVISORY_LOCK, "advisory_lock")     \
    X(TEMP_TABLE, "temp_table")           \
    X(HOLD_CURSOR, "cursor_with_hold")    \
    X(LISTEN, "listen")                   \
    X(PREPARE, "prepare")                 \
    X(SET, "set")                         \
    X(ROLE, "role")                       \
    X(UNCLASSIFIED, "unclassified")
#define SL_PIN_ENUM(id, name) SL_PINR_##id,
typedef enum { SL_PIN_REASONS(SL_PIN_ENUM) SL_PIN_NREASONS } sl_pin_reason;
#undef SL_PIN_ENUM
#define SL_PIN_BIT(r) (1u << (r))
#define SL_PIN_ALL ((1u << SL_PIN_NREASONS) - 1)
extern const char *const sl_pin_reason_names[SL_PIN_NREASONS];
/* "advisory_lock,listen" for a set of bits ("" for none). */
void sl_pin_reasons_text(unsigned bits, char *buf, size_t len);

typedef enum {
    SL_SK_OTHER = 0,      /* nothing about session settings */
    SL_SK_SET,            /* SET [SESSION] name = value | TO value | DEFAULT (also TIME ZONE, NAMES, SCHEMA) */
    SL_SK_SET_LOCAL,      /* SET LOCAL ..., SET TRANSACTION, SET CONSTRAINTS: ends with the transaction */
    SL_SK_RESET,          /* RESET name */
    SL_SK_RESET_ALL,      /* RESET ALL */
    SL_SK_DISCARD_ALL,    /* DISCARD ALL: every setting back to its default, every pin gone */
    SL_SK_ROLLBACK_TO,    /* ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] x: part of a transaction undone */
    SL_SK_LISTEN,         /* LISTEN channel (channel in name) */
    SL_SK_UNLISTEN,       /* UNLISTEN channel, or "*" */
    SL_SK_DECLARE,        /* DECLARE name ... (pins when WITH HOLD) */
    SL_SK_CLOSE,          /* CLOSE name (name empty for CLOSE ALL) */
    SL_SK_PREPARE,        /* PREPARE name ... */
    SL_SK_DEALLOCATE,     /* DEALLOCATE [PREPARE] name (name empty for ALL) */
} sl_stmt_kind;

#define SL_STMT_NAME_MAX 64
#define SL_STMT_VALUE_MAX 512

typedef struct sl_stmt_info {
    sl_stmt_kind kind;
    unsigned pins;              /* SL_PIN_BIT()s of the state this statement leaves on the server */
    unsigned clears;            /* SL_PIN_BIT()s of the state it removes entirely */
    unsigned recheck;           /* SL_PIN_BIT()s of the state it may take or give back in part (the
                                   advisory lock functions): asked of the server once it has run */
    int ntokens;                /* tokens in the statement (more than 96: 97) */
    /* SET / RESET: the parameter, lower case ("timezone" for SET TIME ZONE, "client_encoding" for
     * SET NAMES, "search_path" for SET SCHEMA); LISTEN/UNLISTEN: the channel, DECLARE/CLOSE: the
     * cursor, PREPARE/DEALLOCATE: the statement, each as the server folds it */
    char name[SL_STMT_NAME_MAX];
    /* SET: the value as the server stores it (a list parameter such as search_path flattened and
     * quoted the way SHOW prints it), to be given back with set_config(); empty with is_default */
    char value[SL_STMT_VALUE_MAX];
    bool is_default;            /* SET name TO DEFAULT (same as RESET name) */
    bool value_ok;              /* SET: the value was understood (else the setting cannot be tracked) */
    int max_param;              /* highest $n the statement uses (extended protocol), 0 if none */
} sl_stmt_info;

/* Walk the statements of a query string (a simple Query may hold several, separated by ';'). */
typedef struct sl_stmt_iter {
    const char *p, *end;
    bool broken;                /* the text could not be lexed (e.g. an unterminated quote) */
} sl_stmt_iter;

void sl_stmt_iter_init(sl_stmt_iter *it, const char *sql, size_t len);
/* The next non-empty statement; false at the end of the text. */
bool sl_stmt_next(sl_stmt_iter *it, sl_stmt_info *out);

/* Classify a text that is one statement (a Parse), or the first statement of a text. */
void sl_stmt_classify_one(const char *sql, size_t len, sl_stmt_info *out);

/* The hot path's shortcut (one pass, no tokens kept): the number of statements in a text (as
 * sl_stmt_next would return them) when it is certain that each of them classifies as nothing at
 * all (kind SL_SK_OTHER, no pins, no clears, lexable), with the highest $n in *max_param; -1 when
 * that is not certain and the text needs sl_stmt_next (a statement starting with SET, RESET,
 * DISCARD, LISTEN, UNLISTEN, DECLARE, CLOSE, PREPARE, DEALLOCATE, CREATE, ROLLBACK or ABORT; a word
 * or quoted identifier starting with pg_, temp or set_config anywhere; an E'' or U&'' string, a
 * dollar quote or anything unterminated). */
int sl_stmt_plain_count(const char *sql, size_t len, int *max_param);
/* The same answer from the one pass alone. sl_stmt_plain_count first looks in a small per-thread
 * table of plain texts seen before: a text that differs from one of them only in its runs of
 * digits (the same statement with other literal numbers) gets that text's answer without the pass.
 * Texts with a '$' in them, and texts longer than 250 bytes, are never remembered. */
int sl_stmt_plain_scan(const char *sql, size_t len, int *max_param);
/* This thread's table: texts answered from it, and texts that needed the pass (for tests). */
void sl_stmt_shape_stats(uint64_t *hits, uint64_t *misses);

#endif
