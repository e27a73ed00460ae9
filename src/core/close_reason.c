/* close_reason.c - texts and goodbye manners of the close reasons. */
#include "core/close_reason.h"

#define SL_CLOSE_TEXT(id, text, polite) text,
static const char *const texts[] = {SL_CLOSE_REASONS(SL_CLOSE_TEXT)};
#undef SL_CLOSE_TEXT
#define SL_CLOSE_POLITE(id, text, polite) polite,
static const bool polite[] = {SL_CLOSE_REASONS(SL_CLOSE_POLITE)};
#undef SL_CLOSE_POLITE

const char *sl_close_reason_text(sl_close_reason r) { return r < SL_CLOSE_NREASONS ? texts[r] : "?"; }
bool sl_close_reason_polite(sl_close_reason r) { return r < SL_CLOSE_NREASONS && polite[r]; }
