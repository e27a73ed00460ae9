/* md5.c - PostgreSQL md5 password hashing and AuthenticationMD5Password answers. */
#include "auth/md5.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/scram.h"

/* The MD5 implementation is fetched from the provider once: EVP_md5() in EVP_DigestInit_ex would
 * look it up by name again on every login (more instructions than the hash itself). Each thread
 * keeps one digest context for all its hashes (freed when the thread ends) instead of making and
 * freeing one per hash. */
static EVP_MD *g_md5;
static pthread_key_t g_ctx_key;
static bool g_ctx_key_ok;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;

static void free_ctx(void *ctx) { EVP_MD_CTX_free(ctx); }

static void fetch_md5(void)
{
   g_md5 = EVP_MD_fetch(NULL, "MD5", NULL);
   g_ctx_key_ok = pthread_key_create(&g_ctx_key, free_ctx) == 0;
}

/* This thread's digest context, made on first use; NULL when none can be had. */
static EVP_MD_CTX *thread_ctx(void)
{
   pthread_once(&md5_once, fetch_md5);
   if (!g_md5 || !g_ctx_key_ok)
      return NULL;
   EVP_MD_CTX *ctx = pthread_getspecific(g_ctx_key);
   if (ctx)
      return ctx;
   ctx = EVP_MD_CTX_new();
   if (ctx && pthread_setspecific(g_ctx_key, ctx) != 0) {
      EVP_MD_CTX_free(ctx);
      ctx = NULL;
   }
   return ctx;
}

/* out = "md5" + hex(md5(a || b)); "" on failure. */
static void md5_hex2(const void *a, size_t alen, const void *b, size_t blen, char out[36])
{
   static const char hex[] = "0123456789abcdef";
   uint8_t dig[16];
   unsigned int dlen = 0;
   EVP_MD_CTX *ctx = thread_ctx();
   bool ok = ctx != NULL && EVP_DigestInit_ex2(ctx, g_md5, NULL) == 1 && EVP_DigestUpdate(ctx, a, alen) == 1 &&
             EVP_DigestUpdate(ctx, b, blen) == 1 && EVP_DigestFinal_ex(ctx, dig, &dlen) == 1 && dlen == 16;

   out[0] = '\0';
   if (!ok)
      return;
   memcpy(out, "md5", 3);
   for (int i = 0; i < 16; i++) {
      out[3 + 2 * i] = hex[dig[i] >> 4];
      out[4 + 2 * i] = hex[dig[i] & 15];
   }
   out[SL_MD5_HASH_LEN] = '\0';
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
   /* user_hash is a well-formed hash (or "" when hashing failed): salt it without checking again */
   if (user_hash[0] != '\0')
      md5_hex2(user_hash + 3, 32, salt, 4, expect);
   else
      expect[0] = '\0';
   ok = expect[0] != '\0' && strnlen(answer, SL_MD5_HASH_LEN + 1) == SL_MD5_HASH_LEN &&
        CRYPTO_memcmp(expect, answer, SL_MD5_HASH_LEN) == 0;
   OPENSSL_cleanse(user_hash, sizeof(user_hash));
   OPENSSL_cleanse(expect, sizeof(expect));
   return ok;
}
