/* saslprep.c - SASLprep (RFC 4013) of SCRAM passwords, covering the common cases without Unicode tables. */
#include "auth/saslprep.h"

#include <stdint.h>
#include <string.h>

/* Decode one UTF-8 sequence at s (strictly: no overlongs, surrogates or values above U+10FFFF). Returns its
 * length, or 0 if invalid. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
   size_t n, i;
   uint32_t v;

   if (s[0] < 0x80) {
      *cp = s[0];
      return 1;
   }
   if (s[0] >= 0xc2 && s[0] <= 0xdf) {
      n = 2;
      v = s[0] & 0x1f;
   } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
      n = 3;
      v = s[0] & 0x0f;
   } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
      n = 4;
      v = s[0] & 0x07;
   } else {
      return 0;
   }
   for (i = 1; i < n; i++) {
      if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
         return 0;
      v = (v << 6) | (s[i] & 0x3f);
   }
   if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) || (v >= 0xd800 && v <= 0xdfff))
      return 0;
   *cp = v;
   return n;
}

/* RFC 3454 table C.1.2 (non-ASCII space characters). PostgreSQL checks this before B.1, so U+200B is a space. */
static bool is_nonascii_space(uint32_t c)
{
   return c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200b) || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* RFC 3454 table B.1 (commonly mapped to nothing). */
static bool is_mapped_to_nothing(uint32_t c)
{
   return c == 0xad || c == 0x34f || c == 0x1806 || (c >= 0x180b && c <= 0x180d) || (c >= 0x200b && c <= 0x200d) ||
          c == 0x2060 || (c >= 0xfe00 && c <= 0xfe0f) || c == 0xfeff;
}

/* Characters that are NFKC-stable starters which nothing composes with, are assigned, are not prohibited by
 * SASLprep and are not right-to-left: a string made only of these is its own SASLprep output. */
static bool is_known_stable(uint32_t c)
{
   if (c >= 0x20 && c <= 0x7e)
      return true;
   if (c >= 0xc0 && c <= 0xff) /* Latin-1 letters (plus x and division sign) */
      return true;
   if (c >= 0x100 && c <= 0x17e) /* Latin Extended-A minus its compatibility characters */
      return c != 0x132 && c != 0x133 && c != 0x13f && c != 0x140 && c != 0x149;
   if ((c >= 0x391 && c <= 0x3a9 && c != 0x3a2) || (c >= 0x3b1 && c <= 0x3c9)) /* basic Greek */
      return true;
   return c >= 0x410 && c <= 0x44f; /* basic Cyrillic */
}

static void put_utf8(char *out, size_t *o, uint32_t c)
{
   if (c < 0x80) {
      out[(*o)++] = (char)c;
   } else if (c < 0x800) {
      out[(*o)++] = (char)(0xc0 | (c >> 6));
      out[(*o)++] = (char)(0x80 | (c & 0x3f));
   } else if (c < 0x10000) {
      out[(*o)++] = (char)(0xe0 | (c >> 12));
      out[(*o)++] = (char)(0x80 | ((c >> 6) & 0x3f));
      out[(*o)++] = (char)(0x80 | (c & 0x3f));
   } else {
      out[(*o)++] = (char)(0xf0 | (c >> 18));
      out[(*o)++] = (char)(0x80 | ((c >> 12) & 0x3f));
      out[(*o)++] = (char)(0x80 | ((c >> 6) & 0x3f));
      out[(*o)++] = (char)(0x80 | (c & 0x3f));
   }
}

bool sl_saslprep(const char *in, char *out, size_t outlen)
{
   const unsigned char *s = (const unsigned char *)in;
   size_t len = strlen(in), i = 0, o = 0;
   bool ascii = true;

   if (outlen < len + 1)
      return false;
   for (size_t k = 0; k < len; k++)
      ascii = ascii && s[k] < 0x80;
   if (ascii)
      goto as_is;
   while (i < len) {
      uint32_t c;
      size_t n = utf8_decode(s + i, &c);

      if (n == 0)
         goto as_is;
      i += n;
      if (is_nonascii_space(c))
         c = ' ';
      else if (is_mapped_to_nothing(c))
         continue;
      if (!is_known_stable(c))
         goto as_is;
      put_utf8(out, &o, c); /* never longer than the input consumed so far */
   }
   if (o == 0)
      goto as_is;
   out[o] = '\0';
   return true;
as_is:
   memcpy(out, in, len + 1);
   return true;
}
