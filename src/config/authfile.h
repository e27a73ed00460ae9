/* authfile.h - private to the config layer: the lexical rules PostgreSQL's pg_hba.conf and pg_ident.conf
 * share (fields, comma lists, double quotes, '#' comments, backslash continuation, @file inclusion), and
 * the regular expressions both files allow (a name starting with '/').
 *
 * A file is read into logical lines; each line is a list of fields (separated by blanks), each field a
 * list of tokens (separated by commas, "a, b" included). A token remembers whether any part of it was
 * double-quoted: a quoted keyword ("all") is just a name. An unquoted token "@name" in any field is
 * replaced by the tokens of the file "name" (relative to the directory of the file that names it),
 * nested up to SL_AF_MAX_DEPTH. Stricter than PostgreSQL, and refused with a reason: an unterminated
 * quote, an empty list element ("a,,b", "a," at the end of a line), a NUL byte.
 */
#ifndef SL_CONFIG_AUTHFILE_H
#define SL_CONFIG_AUTHFILE_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#define SL_AF_MAX_DEPTH 10

typedef struct sl_af_token {
    char *text;
    bool quoted; /* some part of it was double-quoted: never a keyword */
} sl_af_token;

typedef struct sl_af_field {
    sl_af_token *tok;
    size_t n; /* >= 1 */
} sl_af_field;

typedef struct sl_af_line {
    sl_af_field *field;
    size_t n;          /* >= 1 (blank and comment-only lines are not reported) */
    const char *file;  /* the name errors use for this file */
    int line;          /* first physical line of the (possibly continued) line */
} sl_af_line;

/* Called for every non-empty logical line, in order. Return false with a reason (no position: the
 * parser prefixes "file:line: ") to stop. The line and its strings live only during the call. */
typedef bool (*sl_af_line_cb)(void *ctx, const sl_af_line *line, char *reason, size_t rlen);

/* Tokenize text[0..len). name is used in errors; base_dir resolves relative @file names (NULL: @file
 * is refused, e.g. for a buffer with no file behind it). On failure writes "file:line: reason". */
bool sl_af_parse(const char *text, size_t len, const char *name, const char *base_dir, sl_af_line_cb cb,
                 void *ctx, char *err, size_t errlen);

/* Read a whole file (malloc'd, NUL-terminated, *len without the NUL). false + "path: reason" in err. */
bool sl_af_read_file(const char *path, const char *what, char **text, size_t *len, char *err, size_t errlen);

/* The directory part of path ("." when it has none); malloc'd, NULL on OOM. */
char *sl_af_dirname(const char *path);

/* Is tok the unquoted keyword kw? */
bool sl_af_is_keyword(const sl_af_token *tok, const char *kw);

/* Compile pattern (the token without its leading '/') as a POSIX extended regular expression with
 * PostgreSQL's meaning: the shorthands \d \D \w \W \s \S outside brackets are translated; any other
 * backslash-letter escape, a backslash inside [...] and a non-greedy quantifier (*? +? ?? {n}?) are
 * refused, because POSIX would silently give them another meaning; so are what regcomp would take
 * minutes or gigabytes over: counts above 255 or multiplying past 100000, + and {m,n} repeating
 * something that can match the empty string ("(.*)+": write "(.*)*"), and repetitions (+ counting
 * as 2) nested past 1000 copies of what they repeat.
 * captures: keep subexpression offsets (the ident map's \1). On success *nsub (may be NULL) is the
 * number of subexpressions. */
bool sl_af_regcomp(regex_t *re, const char *pattern, bool captures, size_t *nsub, char *reason, size_t rlen);

#endif
