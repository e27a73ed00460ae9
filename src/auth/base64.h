/* base64.h - RFC 4648 standard base64 (with '=' padding), strict decoding. */
#ifndef SL_AUTH_BASE64_H
#define SL_AUTH_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Characters needed for the encoding of n bytes, not counting the NUL. */
#define SL_BASE64_ENC_LEN(n) ((((n) + 2) / 3) * 4)
/* Upper bound of the bytes a base64 text of len characters decodes to. */
#define SL_BASE64_DEC_MAX(len) ((((len) + 3) / 4) * 3)

/* Encode n bytes to out as a NUL-terminated string. false (out = "") if outlen < SL_BASE64_ENC_LEN(n) + 1. */
bool sl_base64_encode(const void *in, size_t n, char *out, size_t outlen);

/* Decode exactly len characters (no whitespace; length a multiple of 4; '=' padding only at the end; the
 * unused low bits of a padded group are ignored, as most decoders do). Writes at most outcap bytes and the
 * decoded length to *outlen. false if the text is not valid base64 or does not fit. */
bool sl_base64_decode(const char *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen);

#endif
