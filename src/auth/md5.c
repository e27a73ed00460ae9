/* md5.c - PostgreSQL md5 password hashing and AuthenticationMD5Password answers. */
#include "auth/md5.h"

#include <string.h>

#include <openssl/crypto.h>

#include "auth/scram.h"

/* MD5 (RFC 1321), written out here: a login hashes 36 bytes once, and going through OpenSSL's EVP
 * layer for that (a context, provider calls, five allocations) cost more than the hash itself. It
 * only serves PostgreSQL's md5 password protocol, which needs no more than this. */
typedef struct md5_ctx {
   uint32_t h[4];
   uint64_t total;     /* bytes fed so far */
   uint8_t block[64];  /* the partial block */
} md5_ctx;

/* The four round functions and one step: a = b + rotl(a + f(b, c, d) + m + k, r). */
#define F(b, c, d) (((b) & (c)) | (~(b) & (d)))
#define G(b, c, d) (((d) & (b)) | (~(d) & (c)))
#define H(b, c, d) ((b) ^ (c) ^ (d))
#define I(b, c, d) ((c) ^ ((b) | ~(d)))
#define STEP(f, a, b, c, d, mi, k, r)                 \
   do {                                               \
      (a) += f((b), (c), (d)) + (mi) + (uint32_t)(k); \
      (a) = ((a) << (r) | (a) >> (32 - (r))) + (b);   \
   } while (0)

/* One 64-byte block; the 64 steps written out (constants: floor(abs(sin(i + 1)) * 2^32)). */
static void md5_block(uint32_t h[4], const uint8_t *p)
{
   uint32_t m[16];
   uint32_t a = h[0], b = h[1], c = h[2], d = h[3];

   for (int i = 0; i < 16; i++)
      m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
             (uint32_t)p[4 * i + 3] << 24;
   STEP(F, a, b, c, d, m[0], 0xd76aa478, 7);
   STEP(F, d, a, b, c, m[1], 0xe8c7b756, 12);
   STEP(F, c, d, a, b, m[2], 0x242070db, 17);
   STEP(F, b, c, d, a, m[3], 0xc1bdceee, 22);
   STEP(F, a, b, c, d, m[4], 0xf57c0faf, 7);
   STEP(F, d, a, b, c, m[5], 0x4787c62a, 12);
   STEP(F, c, d, a, b, m[6], 0xa8304613, 17);
   STEP(F, b, c, d, a, m[7], 0xfd469501, 22);
   STEP(F, a, b, c, d, m[8], 0x698098d8, 7);
   STEP(F, d, a, b, c, m[9], 0x8b44f7af, 12);
   STEP(F, c, d, a, b, m[10], 0xffff5bb1, 17);
   STEP(F, b, c, d, a, m[11], 0x895cd7be, 22);
   STEP(F, a, b, c, d, m[12], 0x6b901122, 7);
   STEP(F, d, a, b, c, m[13], 0xfd987193, 12);
   STEP(F, c, d, a, b, m[14], 0xa679438e, 17);
   STEP(F, b, c, d, a, m[15], 0x49b40821, 22);
   STEP(G, a, b, c, d, m[1], 0xf61e2562, 5);
   STEP(G, d, a, b, c, m[6], 0xc040b340, 9);
   STEP(G, c, d, a, b, m[11], 0x265e5a51, 14);
   STEP(G, b, c, d, a, m[0], 0xe9b6c7aa, 20);
   STEP(G, a, b, c, d, m[5], 0xd62f105d, 5);
   STEP(G, d, a, b, c, m[10], 0x02441453, 9);
   STEP(G, c, d, a, b, m[15], 0xd8a1e681, 14);
   STEP(G, b, c, d, a, m[4], 0xe7d3fbc8, 20);
   STEP(G, a, b, c, d, m[9], 0x21e1cde6, 5);
   STEP(G, d, a, b, c, m[14], 0xc33707d6, 9);
   STEP(G, c, d, a, b, m[3], 0xf4d50d87, 14);
   STEP(G, b, c, d, a, m[8], 0x455a14ed, 20);
   STEP(G, a, b, c, d, m[13], 0xa9e3e905, 5);
   STEP(G, d, a, b, c, m[2], 0xfcefa3f8, 9);
   STEP(G, c, d, a, b, m[7], 0x676f02d9, 14);
   STEP(G, b, c, d, a, m[12], 0x8d2a4c8a, 20);
   STEP(H, a, b, c, d, m[5], 0xfffa3942, 4);
   STEP(H, d, a, b, c, m[8], 0x8771f681, 11);
   STEP(H, c, d, a, b, m[11], 0x6d9d6122, 16);
   STEP(H, b, c, d, a, m[14], 0xfde5380c, 23);
   STEP(H, a, b, c, d, m[1], 0xa4beea44, 4);
   STEP(H, d, a, b, c, m[4], 0x4bdecfa9, 11);
   STEP(H, c, d, a, b, m[7], 0xf6bb4b60, 16);
   STEP(H, b, c, d, a, m[10], 0xbebfbc70, 23);
   STEP(H, a, b, c, d, m[13], 0x289b7ec6, 4);
   STEP(H, d, a, b, c, m[0], 0xeaa127fa, 11);
   STEP(H, c, d, a, b, m[3], 0xd4ef3085, 16);
   STEP(H, b, c, d, a, m[6], 0x04881d05, 23);
   STEP(H, a, b, c, d, m[9], 0xd9d4d039, 4);
   STEP(H, d, a, b, c, m[12], 0xe6db99e5, 11);
   STEP(H, c, d, a, b, m[15], 0x1fa27cf8, 16);
   STEP(H, b, c, d, a, m[2], 0xc4ac5665, 23);
   STEP(I, a, b, c, d, m[0], 0xf4292244, 6);
   STEP(I, d, a, b, c, m[7], 0x432aff97, 10);
   STEP(I, c, d, a, b, m[14], 0xab9423a7, 15);
   STEP(I, b, c, d, a, m[5], 0xfc93a039, 21);
   STEP(I, a, b, c, d, m[12], 0x655b59c3, 6);
   STEP(I, d, a, b, c, m[3], 0x8f0ccc92, 10);
   STEP(I, c, d, a, b, m[10], 0xffeff47d, 15);
   STEP(I, b, c, d, a, m[1], 0x85845dd1, 21);
   STEP(I, a, b, c, d, m[8], 0x6fa87e4f, 6);
   STEP(I, d, a, b, c, m[15], 0xfe2ce6e0, 10);
   STEP(I, c, d, a, b, m[6], 0xa3014314, 15);
   STEP(I, b, c, d, a, m[13], 0x4e0811a1, 21);
   STEP(I, a, b, c, d, m[4], 0xf7537e82, 6);
   STEP(I, d, a, b, c, m[11], 0xbd3af235, 10);
   STEP(I, c, d, a, b, m[2], 0x2ad7d2bb, 15);
   STEP(I, b, c, d, a, m[9], 0xeb86d391, 21);
   h[0] += a;
   h[1] += b;
   h[2] += c;
   h[3] += d;
}

#undef F
#undef G
#undef H
#undef I
#undef STEP

static void md5_init(md5_ctx *x)
{
   x->h[0] = 0x67452301;
   x->h[1] = 0xefcdab89;
   x->h[2] = 0x98badcfe;
   x->h[3] = 0x10325476;
   x->total = 0;
}

static void md5_update(md5_ctx *x, const void *data, size_t n)
{
   const uint8_t *p = data;
   size_t have = (size_t)(x->total & 63);

   x->total += n;
   if (have) {
      size_t take = 64 - have < n ? 64 - have : n;
      memcpy(x->block + have, p, take);
      p += take;
      n -= take;
      if (have + take < 64)
         return;
      md5_block(x->h, x->block);
   }
   for (; n >= 64; p += 64, n -= 64)
      md5_block(x->h, p);
   memcpy(x->block, p, n);
}

static void md5_final(md5_ctx *x, uint8_t out[16])
{
   uint64_t bits = x->total * 8;
   size_t have = (size_t)(x->total & 63);
   uint8_t len[8];

   x->block[have++] = 0x80;
   if (have > 56) {
      memset(x->block + have, 0, 64 - have);
      md5_block(x->h, x->block);
      have = 0;
   }
   memset(x->block + have, 0, 56 - have);
   for (int i = 0; i < 8; i++)
      len[i] = (uint8_t)(bits >> (8 * i));
   memcpy(x->block + 56, len, 8);
   md5_block(x->h, x->block);
   for (int i = 0; i < 16; i++)
      out[i] = (uint8_t)(x->h[i / 4] >> (8 * (i % 4)));
   OPENSSL_cleanse(x, sizeof(*x));
}

/* out = "md5" + hex(md5(a || b)). */
static void md5_hex2(const void *a, size_t alen, const void *b, size_t blen, char out[36])
{
   static const char hex[] = "0123456789abcdef";
   uint8_t dig[16];
   md5_ctx x;

   md5_init(&x);
   md5_update(&x, a, alen);
   md5_update(&x, b, blen);
   md5_final(&x, dig);
   memcpy(out, "md5", 3);
   for (int i = 0; i < 16; i++) {
      out[3 + 2 * i] = hex[dig[i] >> 4];
      out[4 + 2 * i] = hex[dig[i] & 15];
   }
   out[SL_MD5_HASH_LEN] = '\0';
   OPENSSL_cleanse(dig, sizeof(dig));
}

void sl_md5_user_hash(const char *password, const char *user, char out[36])
{
   md5_hex2(password, strlen(password), user, strlen(user), out);
}

void sl_md5_salted(const char *user_hash, const uint8_t salt[4], char out[36])
{
   if (!sl_md5_is_hash(user_hash)) {
      out[0] = '\0';
      return;
   }
   md5_hex2(user_hash + 3, 32, salt, 4, out);
}

bool sl_md5_is_hash(const char *s)
{
   if (strncmp(s, "md5", 3) != 0)
      return false;
   for (int i = 3; i < SL_MD5_HASH_LEN; i++) {
      char c = s[i];

      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
         return false;
   }
   return s[SL_MD5_HASH_LEN] == '\0';
}

bool sl_md5_verify(const char *stored, const char *user, const uint8_t salt[4], const char *answer)
{
   char user_hash[36], expect[36];
   bool ok;

   if (stored == NULL || answer == NULL || user == NULL || sl_scram_is_secret(stored))
      return false;
   if (sl_md5_is_hash(stored))
      memcpy(user_hash, stored, sizeof(user_hash));
   else
      sl_md5_user_hash(stored, user, user_hash);
   md5_hex2(user_hash + 3, 32, salt, 4, expect); /* user_hash is well-formed: no second check */
   ok = strnlen(answer, SL_MD5_HASH_LEN + 1) == SL_MD5_HASH_LEN &&
        CRYPTO_memcmp(expect, answer, SL_MD5_HASH_LEN) == 0;
   OPENSSL_cleanse(user_hash, sizeof(user_hash));
   OPENSSL_cleanse(expect, sizeof(expect));
   return ok;
}
