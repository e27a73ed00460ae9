/* fuzz_scram_client.c - SCRAM-SHA-256, the side that logs in to PostgreSQL (auth/scram_client.c):
 * what a server (or something posing as one) sends: server-first-message, then server-final.
 * Input: a flags byte, server-first, the separator "\n--\n", server-final. The client nonce is
 * fixed ("fuzzClientNonce"), so seeds can extend it. Flag 1: log in with the password "pencil"
 * (only when the message asks for at most 64 iterations: the server may ask for up to 10 million,
 * which is allowed and slow); otherwise pass-through with fixed ClientKey/ServerKey. Flag 2: when
 * server-final is "v=", the harness appends the right signature.
 * Checks (recomputed independently from the keys and the messages):
 *  - client-final is "c=biws,r=<the server's nonce>,p=<the right proof>";
 *  - server-final verifies only with the right ServerSignature, and only once. */
#include "fuzz_common.h"

#include "auth/base64.h"
#include "auth/scram_int.h"

static const char g_nonce[] = "fuzzClientNonce";
static const uint8_t g_ck[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t g_sk[32] = "fedcba9876543210fedcba9876543210";

/* value of attribute `name` in a comma-separated message, or NULL */
static const char *attr(const char *msg, size_t len, char name, size_t *vlen)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && msg[j] != ',') j++;
        if (j - i >= 2 && msg[i] == name && msg[i + 1] == '=') {
            *vlen = j - i - 2;
            return msg + i + 2;
        }
        i = j + 1;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t flags = fz_u8(&in);
    size_t sf_len, fin_len;
    const uint8_t *sf_p = fz_until(&in, "\n--\n", &sf_len);
    const uint8_t *fin_p = fz_bytes(&in, in.n, &fin_len);
    char *sf = malloc(sf_len ? sf_len : 1);
    if (!sf) abort();
    memcpy(sf, sf_p, sf_len);

    /* password mode only for small iteration counts (see the top comment) */
    bool password = false;
    size_t ilen;
    const char *iv = attr(sf, sf_len, 'i', &ilen);
    long iter = 0;
    if ((flags & 1) && iv && sl_scram_i_parse_int(iv, ilen, 1, 64, &iter)) password = true;

    sl_scram_client st;
    sl_scram_client_init(&st, password ? "pencil" : NULL, password ? NULL : g_ck, password ? NULL : g_sk);
    FZ_CHECK(sl_scram_client_set_nonce(&st, g_nonce, NULL), "set_nonce");
    char cf[256], cfin[1024];
    FZ_CHECK(sl_scram_client_first(&st, cf, sizeof(cf)), "client-first");
    FZ_CHECK(!strcmp(cf, "n,,n=,r=fuzzClientNonce"), "client-first \"%s\"", cf);
    const char *cfb = cf + 3;

    const char *errmsg = NULL;
    if (!sl_scram_client_final(&st, sf, sf_len, cfin, sizeof(cfin), &errmsg)) {
        FZ_CHECK(errmsg != NULL, "refused without a reason");
        FZ_LOG("server-first refused: %s", errmsg);
        FZ_CHECK(!sl_scram_client_verify(&st, "v=", 2, &errmsg), "verify after a failed final");
        goto done;
    }
    /* the keys the client must have used */
    uint8_t ck[32], sk[32], stored[32], sig[32], ssig[32];
    if (password) {
        size_t slen, rawlen;
        const char *s64 = attr(sf, sf_len, 's', &slen);
        uint8_t salt[256];
        FZ_CHECK(s64 && sl_base64_decode(s64, slen, salt, sizeof(salt), &rawlen), "accepted without a salt");
        FZ_CHECK(sl_scram_i_password_keys("pencil", salt, rawlen, (int)iter, ck, sk), "keys");
    } else {
        memcpy(ck, g_ck, 32);
        memcpy(sk, g_sk, 32);
    }
    size_t rlen;
    const char *r = attr(sf, sf_len, 'r', &rlen);
    FZ_CHECK(r && rlen > strlen(g_nonce) && !strncmp(r, g_nonce, strlen(g_nonce)), "nonce not ours accepted");
    char want[1024];
    int wl = snprintf(want, sizeof(want), "c=biws,r=%.*s,p=", (int)rlen, r);
    FZ_CHECK(wl > 0 && (size_t)wl < sizeof(want) && !strncmp(cfin, want, (size_t)wl), "client-final \"%s\"", cfin);
    size_t cfwp_len = (size_t)wl - 3;
    FZ_CHECK(sl_scram_i_sha256(ck, 32, stored), "sha");
    FZ_CHECK(sl_scram_i_auth_hmac(stored, cfb, strlen(cfb), sf, sf_len, cfin, cfwp_len, sig), "hmac");
    FZ_CHECK(sl_scram_i_auth_hmac(sk, cfb, strlen(cfb), sf, sf_len, cfin, cfwp_len, ssig), "hmac");
    uint8_t proof[32];
    for (int i = 0; i < 32; i++) proof[i] = ck[i] ^ sig[i];
    char proof64[64];
    sl_base64_encode(proof, 32, proof64, sizeof(proof64));
    FZ_CHECK(!strcmp(cfin + wl, proof64), "wrong proof \"%s\", want \"%s\"", cfin + wl, proof64);

    /* server-final */
    char *fin = malloc(fin_len + 64);
    if (!fin) abort();
    memcpy(fin, fin_p, fin_len);
    char good[64] = "v=";
    sl_base64_encode(ssig, 32, good + 2, sizeof(good) - 2);
    if ((flags & 2) && fin_len == 2 && !memcmp(fin, "v=", 2)) {
        memcpy(fin, good, strlen(good));
        fin_len = strlen(good);
    }
    char *exact = malloc(fin_len ? fin_len : 1);
    if (!exact) abort();
    memcpy(exact, fin, fin_len);
    free(fin);
    bool ok = sl_scram_client_verify(&st, exact, fin_len, &errmsg);
    if (ok) {
        size_t vlen;
        const char *v = attr(exact, fin_len, 'v', &vlen);
        FZ_CHECK(v && vlen == strlen(good) - 2 && !memcmp(v, good + 2, vlen), "verified a wrong server signature");
        FZ_CHECK(!sl_scram_client_verify(&st, exact, fin_len, &errmsg), "verified twice");
        FZ_LOG("server verified (%s mode)", password ? "password" : "pass-through");
    } else {
        FZ_CHECK(errmsg != NULL && strlen(errmsg) < sizeof(st.errbuf) + 100, "refused without a reason");
        FZ_LOG("server-final refused: %s", errmsg);
    }
    free(exact);
done:
    sl_scram_client_clear(&st);
    free(sf);
    return 0;
}
