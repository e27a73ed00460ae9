/* saslprep.h - SASLprep (RFC 4013) of SCRAM passwords, covering the common cases without Unicode tables. */
#ifndef SL_AUTH_SASLPREP_H
#define SL_AUTH_SASLPREP_H

#include <stdbool.h>
#include <stddef.h>

/* Prepare a NUL-terminated password the way PostgreSQL does for SCRAM. out needs strlen(in) + 1 bytes (the
 * result is never longer); returns false only if outlen is too small.
 *  - pure ASCII: unchanged (PostgreSQL's fast path, control characters included);
 *  - valid UTF-8: non-ASCII spaces (RFC 3454 C.1.2) become ' ', "mapped to nothing" characters (B.1) are
 *    dropped; the result is used if every remaining character is one this code knows NFKC leaves alone and
 *    SASLprep allows (printable ASCII, Latin-1 letters, most of Latin Extended-A, basic Greek and Cyrillic);
 *  - anything else (invalid UTF-8, prohibited output, empty after mapping, or characters that might need
 *    normalisation this code cannot do): the input is used as-is, which is also PostgreSQL's fallback when
 *    SASLprep fails. So a password with e.g. compatibility characters (U+2168) differs from PostgreSQL. */
bool sl_saslprep(const char *in, char *out, size_t outlen);

#endif
