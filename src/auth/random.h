/* random.h - cryptographically secure random bytes (OpenSSL RAND_bytes). */
#ifndef SL_AUTH_RANDOM_H
#define SL_AUTH_RANDOM_H

#include <stdbool.h>
#include <stddef.h>

/* Fill buf with n random bytes from the OpenSSL CSPRNG. false if the generator failed (buf unusable). */
bool sl_random_bytes(void *buf, size_t n);

#endif
