/* base64.c - RFC 4648 standard base64 (with '=' padding), strict decoding. */
#include "auth/base64.h"

static const char enc_tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool sl_base64_encode(const void *in, size_t n, char *out, size_t outlen)
{
   const uint8_t *p = in;
   size_t o = 0;

   if (outlen == 0)
      return false;
   if (n > (SIZE_MAX / 4) * 3 - 3 || outlen < SL_BASE64_ENC_LEN(n) + 1) {
      out[0] = '\0';
      return false;
   }
   for (size_t i = 0; i < n; i += 3) {
      uint32_t v = (uint32_t)p[i] << 16;
      size_t rest = n - i;

      if (rest > 1)
         v |= (uint32_t)p[i + 1] << 8;
      if (rest > 2)
         v |= p[i + 2];
      out[o++] = enc_tab[(v >> 18) & 63];
      out[o++] = enc_tab[(v >> 12) & 63];
      out[o++] = rest > 1 ? enc_tab[(v >> 6) & 63] : '=';
      out[o++] = rest > 2 ? enc_tab[v & 63] : '=';
   }
   out[o] = '\0';
   return true;
}

/* Value of one base64 character, or -1. */
static int dec_char(char c)
{
   if (c >= 'A' && c <= 'Z')
      return c - 'A';
   if (c >= 'a' && c <= 'z')
      return c - 'a' + 26;
   if (c >= '0' && c <= '9')
      return c - '0' + 52;
   if (c == '+')
      return 62;
   if (c == '/')
      return 63;
   return -1;
}

bool sl_base64_decode(const char *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen)
{
   size_t o = 0;

   *outlen = 0;
   if (len % 4 != 0)
      return false;
   for (size_t i = 0; i < len; i += 4) {
      bool last = i + 4 == len;
      int pad = 0;
      uint32_t v = 0;

      for (int k = 0; k < 4; k++) {
         char c = in[i + k];
         int d;

         if (c == '=' && last && k >= 2) {
            pad++;
            d = 0;
         } else {
            if (pad > 0) /* data after padding */
               return false;
            d = dec_char(c);
            if (d < 0)
               return false;
         }
         v = (v << 6) | (uint32_t)d;
      }
      if (o + (size_t)(3 - pad) > outcap)
         return false;
      out[o++] = (uint8_t)(v >> 16);
      if (pad < 2)
         out[o++] = (uint8_t)(v >> 8);
      if (pad < 1)
         out[o++] = (uint8_t)v;
   }
   *outlen = o;
   return true;
}
