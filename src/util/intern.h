/* intern.h - shared, reference-counted copies of short strings that many connections hold at once
 * (user and database names, session parameter values): one copy per distinct value, so that
 * 10,000 clients with the same TimeZone keep one "UTC", and equal values compare by pointer. */
#ifndef SL_INTERN_H
#define SL_INTERN_H

/* A reference to the shared copy of s (made on first use); NULL when out of memory. */
const char *sl_intern(const char *s);
/* Another reference to a string sl_intern returned. */
const char *sl_intern_ref(const char *interned);
/* Drop a reference; the copy is freed with the last one. NULL is ignored. */
void sl_intern_release(const char *interned);
/* Distinct strings held (for tests and SHOW MEM-style reporting). */
unsigned long sl_intern_count(void);

#endif
