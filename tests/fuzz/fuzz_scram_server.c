/* fuzz_scram_server.c - SCRAM-SHA-256, the side that verifies clients logging in to the pooler
 * (auth/scram_server.c): client-first-message, then client-final-message, against a fixed secret
 * (password "pencil", 4096 iterations) or, for an unknown user, the mock exchange.
 * Input: a flags byte, client-first, the separator "\n--\n", client-final. Flag 1: unknown user
 * (mock). Flag 2: when client-final ends in "p=", the harness appends the right proof, so the
 * fuzzer explores the success path with every variation of the rest. Flag 4: call final twice.
 * Channel binding (SCRAM-SHA-256-PLUS, tls-server-end-point): flag 8 offers it (a fixed 32-byte
 * certificate hash), flag 16 selects SCRAM-SHA-256-PLUS, flag 32 selects SCRAM-SHA-256 explicitly.
 * Checks (an independent recomputation with OpenSSL-backed helpers):
 *  - success only with the right proof, never for the mock exchange, at most once per exchange;
 *  - on success the server-final "v=" is the right ServerSignature and the recovered ClientKey
 *    is the real one;
 *  - server-first echoes the client's nonce and carries the secret's salt and iterations;
 *  - PLUS only when offered; the gs2 header accepted is "p=tls-server-end-point,," exactly when
 *    PLUS was chosen, 'y' never when it was offered; with binding, success only when c= carries
 *    the header and the certificate hash;
 *  - every refusal has a reason and one of the documented SQLSTATEs. */
#include "fuzz_common.h"

#include "auth/base64.h"
#include "auth/scram_int.h"

static sl_scram_secret g_secret;
static uint8_t g_client_key[SL_SCRAM_KEY_LEN];
static const char g_server_nonce[] = "fuzzServerNonce0123456789";
static const char g_cb_header[] = "p=" SL_SCRAM_CB_TYPE ",,";
static uint8_t g_cb_data[32]; /* the certificate hash: 0, 1, ..., 31 */

static void check_sqlstate(const sl_scram_server *st)
{
    static const char *const known[] = {"08P01", "0A000", "28000", "28P01", "XX000"};
    bool ok = false;
    for (size_t i = 0; st->sqlstate && i < sizeof(known) / sizeof(known[0]); i++) ok |= !strcmp(st->sqlstate, known[i]);
    FZ_CHECK(ok, "refused with SQLSTATE %s", st->sqlstate ? st->sqlstate : "(none)");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    for (int i = 0; i < 32; i++) g_cb_data[i] = (uint8_t)i;
    static const uint8_t salt[] = "saltsaltsaltsalt";
    memset(&g_secret, 0, sizeof(g_secret));
    g_secret.iterations = 4096;
    g_secret.salt_len = 16;
    memcpy(g_secret.salt, salt, 16);
    if (!sl_scram_i_password_keys("pencil", salt, 16, 4096, g_client_key, g_secret.server_key) ||
        !sl_scram_i_sha256(g_client_key, SL_SCRAM_KEY_LEN, g_secret.stored_key))
        abort();
    return 0;
}

/* The last ",p=" of a client-final (where the proof attribute starts), or NULL. */
static const char *find_proof(const char *msg, size_t len)
{
    const char *last = NULL;
    for (size_t i = 0; i + 3 <= len; i++)
        if (!memcmp(msg + i, ",p=", 3)) last = msg + i;
    return last;
}

static void check_success(const sl_scram_server *st, const char *cfb, size_t cfb_len, const char *sf,
                          const char *final, size_t flen, const char *out)
{
    const char *p = find_proof(final, flen);
    FZ_CHECK(p != NULL, "success without a proof");
    size_t cfwp_len = (size_t)(p - final);
    uint8_t sig[32], ssig[32], proof[32], want[32];
    size_t plen;
    FZ_CHECK(sl_scram_i_auth_hmac(g_secret.stored_key, cfb, cfb_len, sf, strlen(sf), final, cfwp_len, sig), "hmac");
    FZ_CHECK(sl_scram_i_auth_hmac(g_secret.server_key, cfb, cfb_len, sf, strlen(sf), final, cfwp_len, ssig), "hmac");
    for (int i = 0; i < 32; i++) want[i] = g_client_key[i] ^ sig[i];
    FZ_CHECK(sl_base64_decode(p + 3, flen - cfwp_len - 3, proof, sizeof(proof), &plen) && plen == 32 &&
                 !memcmp(proof, want, 32),
             "accepted a proof that is not the right one");
    char v[64] = "v=";
    sl_base64_encode(ssig, 32, v + 2, sizeof(v) - 2);
    FZ_CHECK(!strcmp(out, v), "server-final \"%s\", want \"%s\"", out, v);
    FZ_CHECK(st->have_client_key && !memcmp(st->client_key, g_client_key, 32), "wrong ClientKey recovered");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t flags = fz_u8(&in);
    size_t cf_len, fin_len;
    const uint8_t *cf_p = fz_until(&in, "\n--\n", &cf_len);
    const uint8_t *fin_p = fz_bytes(&in, in.n, &fin_len);
    /* exact-size copies: the functions take (pointer, length) and must not read past it */
    char *cf = malloc(cf_len ? cf_len : 1);
    char *fin = malloc(fin_len + 64);
    if (!cf || !fin) abort();
    memcpy(cf, cf_p, cf_len);
    memcpy(fin, fin_p, fin_len);

    sl_scram_server st;
    memset(&st, 0, sizeof(st));
    FZ_CHECK(sl_scram_server_set_nonce(&st, g_server_nonce), "set_nonce");
    bool mock = flags & 1, offered = flags & 8, plus = false;
    char sf[2048], out[512];
    const char *errmsg = NULL;
    if (offered) FZ_CHECK(sl_scram_server_set_channel_binding(&st, g_cb_data, sizeof(g_cb_data)), "set_channel_binding");
    if (flags & (16 | 32)) {
        plus = flags & 16;
        bool sel = sl_scram_server_select_mechanism(&st, plus ? SL_SCRAM_MECH_PLUS : SL_SCRAM_MECH, &errmsg);
        FZ_CHECK(sel == (!plus || offered), "%s %s", plus ? "PLUS selected" : "SCRAM-SHA-256 refused",
                 offered ? "(offered)" : "without an offer");
        if (!sel) {
            FZ_CHECK(errmsg != NULL, "refused without a reason");
            check_sqlstate(&st);
            goto done;
        }
    }
    bool ok = sl_scram_server_first(&st, mock ? NULL : &g_secret, "fuzzuser", cf, cf_len, sf, sizeof(sf), &errmsg);
    if (!ok) {
        FZ_CHECK(errmsg != NULL, "refused without a reason");
        check_sqlstate(&st);
        FZ_LOG("client-first refused: %s", errmsg);
        char out2[512];
        FZ_CHECK(!sl_scram_server_final(&st, fin, fin_len, out2, sizeof(out2), &errmsg), "final after a failed first");
        goto done;
    }
    /* r=<client nonce><server nonce>,s=<salt>,i=<iterations> */
    FZ_CHECK(!strncmp(sf, "r=", 2) && strstr(sf, g_server_nonce), "server-first \"%s\"", sf);
    if (!mock) FZ_CHECK(strstr(sf, ",s=c2FsdHNhbHRzYWx0c2FsdA==,i=4096") != NULL, "server-first \"%s\"", sf);
    size_t hlen = 3; /* the gs2 header accepted, and where client-first-bare starts */
    if (plus) {
        hlen = strlen(g_cb_header);
        FZ_CHECK(cf_len >= hlen && !memcmp(cf, g_cb_header, hlen), "PLUS without \"%s\"", g_cb_header);
    } else {
        FZ_CHECK(cf_len >= 3 && (cf[0] == 'n' || cf[0] == 'y') && cf[1] == ',' && cf[2] == ',', "GS2 header accepted");
        FZ_CHECK(!(offered && cf[0] == 'y'), "'y' accepted although PLUS was offered");
    }

    if ((flags & 2) && fin_len >= 2 && !memcmp(fin + fin_len - 2, "p=", 2)) {
        /* fill in the right proof for what the message says so far */
        const char *p = find_proof(fin, fin_len);
        if (p && p + 3 == fin + fin_len) {
            uint8_t sig[32], proof[32];
            if (sl_scram_i_auth_hmac(g_secret.stored_key, cf + hlen, cf_len - hlen, sf, strlen(sf), fin,
                                     (size_t)(p - fin), sig)) {
                for (int i = 0; i < 32; i++) proof[i] = g_client_key[i] ^ sig[i];
                sl_base64_encode(proof, 32, fin + fin_len, 64);
                fin_len += SL_BASE64_ENC_LEN(32);
            }
        }
    }
    {
        char *exact = malloc(fin_len ? fin_len : 1); /* no slack after it either */
        if (!exact) abort();
        memcpy(exact, fin, fin_len);
        free(fin);
        fin = exact;
    }
    ok = sl_scram_server_final(&st, fin, fin_len, out, sizeof(out), &errmsg);
    if (ok) {
        FZ_CHECK(!mock, "the mock exchange succeeded");
        check_success(&st, cf + hlen, cf_len - hlen, sf, fin, fin_len, out);
        if (plus) { /* c= is the header and the certificate hash */
            uint8_t want[64], got[128];
            memcpy(want, g_cb_header, hlen);
            memcpy(want + hlen, g_cb_data, sizeof(g_cb_data));
            const char *comma = memchr(fin, ',', fin_len);
            size_t glen;
            FZ_CHECK(fin_len > 2 && !memcmp(fin, "c=", 2) && comma &&
                         sl_base64_decode(fin + 2, (size_t)(comma - fin - 2), got, sizeof(got), &glen) &&
                         glen == hlen + sizeof(g_cb_data) && !memcmp(got, want, glen),
                     "bound login without the certificate hash in c=");
        }
        FZ_LOG("verified: %s", out);
    } else {
        FZ_CHECK(errmsg != NULL, "refused without a reason");
        check_sqlstate(&st);
        FZ_LOG("client-final refused: %s", errmsg);
    }
    if (flags & 4) FZ_CHECK(!sl_scram_server_final(&st, fin, fin_len, out, sizeof(out), &errmsg), "final twice");
done:
    sl_scram_server_clear(&st);
    free(cf);
    free(fin);
    return 0;
}
