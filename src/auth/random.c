/* random.c - cryptographically secure random bytes (OpenSSL RAND_bytes), small requests served from a
 * per-thread buffer of generator output so that a login does not pay for a full DRBG call per salt. */
#include "auth/random.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

/* One RAND_bytes call costs about as much as a whole md5 login otherwise (DRBG bookkeeping, a
 * cipher re-init, the fork check): fetch RAND_POOL bytes at once and hand them out in order.
 * Every byte is given out once and wiped from the buffer as it leaves. */
#define RAND_POOL 4096
#define RAND_SMALL 64 /* larger requests (SCRAM keys, salts) go straight to the generator */

typedef struct rand_buf {
   uint8_t bytes[RAND_POOL];
   size_t pos; /* bytes[pos..RAND_POOL) are unused output; pos == RAND_POOL means empty */
} rand_buf;

static __thread rand_buf t_buf = {.pos = RAND_POOL};
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A forked child must not hand out the bytes its parent will hand out too: it drops the buffer of
 * the thread that forked (the only thread the child has). */
static void child_after_fork(void)
{
   OPENSSL_cleanse(t_buf.bytes, sizeof(t_buf.bytes));
   t_buf.pos = RAND_POOL;
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, child_after_fork); }

static bool rand_direct(uint8_t *p, size_t n)
{
   while (n > 0) {
      int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;

      if (RAND_bytes(p, chunk) != 1)
         return false;
      p += chunk;
      n -= (size_t)chunk;
   }
   return true;
}

bool sl_random_bytes(void *buf, size_t n)
{
   rand_buf *b = &t_buf;

   if (n > RAND_SMALL)
      return rand_direct(buf, n);
   if (RAND_POOL - b->pos < n) {
      pthread_once(&atfork_once, register_atfork);
      if (!rand_direct(b->bytes, RAND_POOL)) {
         b->pos = RAND_POOL;
         return false;
      }
      b->pos = 0;
   }
   memcpy(buf, b->bytes + b->pos, n);
   OPENSSL_cleanse(b->bytes + b->pos, n);
   b->pos += n;
   return true;
}
