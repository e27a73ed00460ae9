/* ini_edit.h - change setting values in the text of a pgbouncer.ini-style file while keeping everything else
 * (comments, trailing comments and their column, blank lines, unknown keys, other sections, line endings). */
#ifndef SL_TOOLS_INI_EDIT_H
#define SL_TOOLS_INI_EDIT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sl_ini_change {
    const char *key;    /* a [pgbouncer] setting name (matched case-insensitively) */
    const char *value;  /* the new value, written as is */
    int line;           /* out: 1-based line of the last occurrence changed; 0 when the line was added */
    char *old_line;     /* out: that line before the change (malloc'd, no line ending), NULL if added */
    char *new_line;     /* out: the line after the change (malloc'd, no line ending) */
} sl_ini_change;

/* Set each key in every [pgbouncer] (or [pgsluice]) section of text. A key that is not there is added at the
 * end of the last such section (a section is added when there is none). Returns the new text (malloc'd) or
 * NULL on out of memory / a value with a line break (reason in err). Free the out fields with
 * sl_ini_changes_free. */
char *sl_ini_edit(const char *text, sl_ini_change *changes, size_t n, char *err, size_t errlen);
void sl_ini_changes_free(sl_ini_change *changes, size_t n);

#endif
