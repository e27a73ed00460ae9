/* fuzz_base64_saslprep.c - the small codecs under SCRAM: strict base64 (auth/base64.c), SASLprep
 * of passwords (auth/saslprep.c), the SCRAM secret text form (sl_scram_parse_secret) and the md5
 * hash check. The first byte picks which one gets the rest of the input. Checks:
 *  - base64: a decoded text re-encodes to itself (up to the padding bits the decoder ignores),
 *    and any bytes encode then decode back to themselves, into buffers of exactly the size the
 *    macros promise;
 *  - SASLprep: the output is never longer than the input, is NUL-terminated in place, and a
 *    too-small buffer is refused rather than overrun;
 *  - SCRAM secrets: an accepted secret formats back to text that parses to the same secret. */
#include "fuzz_common.h"

#include "auth/base64.h"
#include "auth/md5.h"
#include "auth/saslprep.h"
#include "auth/scram.h"

static void b64_decode_text(const char *text, size_t n)
{
    size_t cap = SL_BASE64_DEC_MAX(n), got = 0;
    uint8_t *out = malloc(cap ? cap : 1);
    if (!out) abort();
    if (sl_base64_decode(text, n, out, cap, &got)) {
        FZ_CHECK(got <= cap, "decoded %zu into %zu", got, cap);
        FZ_CHECK(n % 4 == 0, "length %zu accepted", n);
        size_t elen = SL_BASE64_ENC_LEN(got) + 1;
        char *enc = malloc(elen);
        if (!enc) abort();
        FZ_CHECK(sl_base64_encode(out, got, enc, elen), "re-encode refused");
        FZ_CHECK(strlen(enc) == n, "re-encoded length %zu, was %zu", strlen(enc), n);
        /* equal except possibly the last data character before padding (ignored low bits) */
        size_t pad = n && text[n - 1] == '=' ? (n > 1 && text[n - 2] == '=' ? 2 : 1) : 0;
        for (size_t i = 0; i < n; i++)
            if (!(pad && i == n - pad - 1)) FZ_CHECK(enc[i] == text[i], "re-encoding differs at %zu", i);
        /* a buffer one byte short must be refused, not overrun */
        if (got > 0) {
            uint8_t *shortbuf = malloc(got - 1 ? got - 1 : 1);
            size_t g2;
            if (!shortbuf) abort();
            FZ_CHECK(!sl_base64_decode(text, n, shortbuf, got - 1, &g2), "decoded into a too-small buffer");
            free(shortbuf);
        }
        free(enc);
    }
    free(out);
}

static void b64_encode_bytes(const uint8_t *p, size_t n)
{
    size_t elen = SL_BASE64_ENC_LEN(n) + 1, got;
    char *enc = malloc(elen);
    uint8_t *dec = malloc(n ? n : 1);
    if (!enc || !dec) abort();
    FZ_CHECK(sl_base64_encode(p, n, enc, elen), "encode refused");
    FZ_CHECK(!sl_base64_encode(p, n, enc, elen - 1), "encoded into a too-small buffer");
    FZ_CHECK(sl_base64_encode(p, n, enc, elen), "encode refused");
    FZ_CHECK(sl_base64_decode(enc, strlen(enc), dec, n, &got), "own encoding refused");
    FZ_CHECK(got == n && (n == 0 || memcmp(dec, p, n) == 0), "round trip differs");
    free(enc);
    free(dec);
}

static void saslprep(const char *pw)
{
    size_t n = strlen(pw);
    char *out = malloc(n + 1);
    if (!out) abort();
    FZ_CHECK(sl_saslprep(pw, out, n + 1), "refused with enough room");
    FZ_CHECK(strlen(out) <= n, "output longer than the input");
    if (n > 0) FZ_CHECK(!sl_saslprep(pw, out, n), "accepted a too-small buffer");
    free(out);
}

static void scram_secret(const char *text)
{
    sl_scram_secret sec, again;
    char buf[SL_SCRAM_SECRET_MAX];
    bool is = sl_scram_is_secret(text);
    FZ_CHECK(is == sl_scram_parse_secret(text, &sec), "is_secret and parse_secret disagree");
    if (!is) return;
    FZ_CHECK(sec.iterations >= 1 && sec.salt_len >= 1 && sec.salt_len <= SL_SCRAM_MAX_SALT, "bad fields accepted");
    FZ_CHECK(sl_scram_secret_format(&sec, buf, sizeof(buf)), "format refused");
    FZ_CHECK(sl_scram_parse_secret(buf, &again), "own format refused: %s", buf);
    FZ_CHECK(again.iterations == sec.iterations && again.salt_len == sec.salt_len &&
                 !memcmp(again.salt, sec.salt, sec.salt_len) && !memcmp(again.stored_key, sec.stored_key, 32) &&
                 !memcmp(again.server_key, sec.server_key, 32),
             "secret changed through its text form");
}

static void md5_check(const char *text)
{
    static const uint8_t salt[4] = {1, 2, 3, 4};
    char h[36];
    if (sl_md5_is_hash(text)) FZ_CHECK(strlen(text) == SL_MD5_HASH_LEN, "hash of length %zu", strlen(text));
    sl_md5_user_hash(text, "user", h);
    FZ_CHECK(sl_md5_is_hash(h), "own hash not a hash");
    /* the stored value is the input; the answer is never right unless it is the right answer */
    char want[36];
    if (sl_md5_is_hash(text)) {
        sl_md5_salted(text, salt, want);
        FZ_CHECK(sl_md5_verify(text, "user", salt, want), "the right answer is refused");
    }
    FZ_CHECK(!sl_md5_verify(text, "user", salt, "md5"), "a truncated answer verifies");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t mode = fz_u8(&in);
    char *text = fz_strndup(in.p, in.n);
    switch (mode % 5) {
    case 0: b64_decode_text((const char *)in.p, in.n); break; /* raw bytes, NULs included */
    case 1: b64_encode_bytes(in.p, in.n); break;
    case 2: saslprep(text); break;
    case 3: scram_secret(text); break;
    default: md5_check(text); break;
    }
    free(text);
    return 0;
}
