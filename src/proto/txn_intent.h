/* txn_intent.h - what a client's query text says about the transaction it starts, for
 * read_write_split: declared read-only (it may go to a replica), declared read-write, a bare BEGIN
 * (the access mode may follow in SET TRANSACTION), a COMMIT/ROLLBACK alone, or anything else.
 * Statements are never guessed at: only a declaration counts. No I/O. */
#ifndef SL_TXN_INTENT_H
#define SL_TXN_INTENT_H

#include <stddef.h>

typedef enum {
    SL_TXN_OTHER = 0,   /* no declaration (or one pgsluice does not trust): the primary */
    SL_TXN_READ_ONLY,   /* BEGIN/START TRANSACTION ... READ ONLY, or a first statement SET TRANSACTION ... READ ONLY
                           (alone after a BEGIN, or opening a multi-statement query), with no transaction end
                           before the last statement */
    SL_TXN_READ_WRITE,  /* BEGIN/START TRANSACTION ... READ WRITE */
    SL_TXN_BARE_BEGIN,  /* BEGIN/START TRANSACTION alone, no access mode (an isolation level allowed) */
    SL_TXN_COMMIT,      /* COMMIT or END alone */
    SL_TXN_ROLLBACK,    /* ROLLBACK or ABORT alone */
} sl_txn_kind;

/* Classify a simple query's text (len bytes, not necessarily NUL-terminated). */
sl_txn_kind sl_txn_classify(const char *sql, size_t len);

#endif
