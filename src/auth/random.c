/* random.c - cryptographically secure random bytes (OpenSSL RAND_bytes). */
#include "auth/random.h"

#include <limits.h>
#include <stdint.h>

#include <openssl/rand.h>

bool sl_random_bytes(void *buf, size_t n)
{
   uint8_t *p = buf;

   while (n > 0) {
      int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;

      if (RAND_bytes(p, chunk) != 1)
         return false;
      p += chunk;
      n -= (size_t)chunk;
   }
   return true;
}
