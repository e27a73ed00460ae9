/* md5.h - PostgreSQL md5 password hashing and AuthenticationMD5Password answers. */
#ifndef SL_AUTH_MD5_H
#define SL_AUTH_MD5_H

#include <stdbool.h>
#include <stdint.h>

#define SL_MD5_HASH_LEN 35 /* "md5" + 32 hex digits, without the NUL */

/* "md5" + hex(md5(password || user)): what pg_authid stores and a userlist.txt may hold. out: 36 bytes incl NUL.
 * On a digest failure out is "" (which never verifies). */
void sl_md5_user_hash(const char *password, const char *user, char out[36]);
/* Answer to AuthenticationMD5Password: "md5" + hex(md5(hex32(user_hash) || salt)). user_hash is the 35-char
 * "md5..." string; anything else gives out = "". */
void sl_md5_salted(const char *user_hash, const uint8_t salt[4], char out[36]);
/* "md5" followed by exactly 32 lowercase hex digits. */
bool sl_md5_is_hash(const char *s);
/* Check a client's md5 answer against a stored password (plain text or md5 hash; a SCRAM secret can never
 * verify an md5 answer and gives false), constant-time compare. */
bool sl_md5_verify(const char *stored, const char *user, const uint8_t salt[4], const char *answer);

#endif
