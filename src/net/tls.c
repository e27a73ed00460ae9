/* tls.c - TLS contexts built from the config snapshot (client_tls_* for applications connecting
 * to pgsluice, server_tls_* for pgsluice connecting to PostgreSQL), the checks that refuse a
 * config whose TLS settings do not load, the contexts new connections start from, and what each
 * sslmode means for the connection code. */
#include "net/tls_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/errbuf.h"

/* ALPN protocol list with PostgreSQL's one name (length-prefixed, as TLS sends it). */
static const unsigned char alpn_postgresql[] = "\x0apostgresql";
#define ALPN_LEN (sizeof(alpn_postgresql) - 1)

/* The settings of one side, by name: error messages name the setting the user wrote. */
typedef struct side_settings {
    const char *prefix; /* "client_tls" or "server_tls" */
    const char *prefix13; /* "client_tls13" or "server_tls13" */
    sl_tls_mode mode;
    const char *key_file, *cert_file, *ca_file, *protocols, *ciphers, *ciphers13;
    const char *dheparams, *ecdhcurve; /* accept side only (NULL on the connect side) */
} side_settings;

static side_settings settings_of(const sl_config *cfg, sl_tls_side side)
{
    if (side == SL_TLS_ACCEPT)
        return (side_settings){"client_tls", "client_tls13", (sl_tls_mode)cfg->client_tls_sslmode,
                               cfg->client_tls_key_file, cfg->client_tls_cert_file, cfg->client_tls_ca_file,
                               cfg->client_tls_protocols, cfg->client_tls_ciphers, cfg->client_tls13_ciphers,
                               cfg->client_tls_dheparams, cfg->client_tls_ecdhcurve};
    return (side_settings){"server_tls", "server_tls13", (sl_tls_mode)cfg->server_tls_sslmode,
                           cfg->server_tls_key_file, cfg->server_tls_cert_file, cfg->server_tls_ca_file,
                           cfg->server_tls_protocols, cfg->server_tls_ciphers, cfg->server_tls13_ciphers,
                           NULL, NULL};
}

static bool set(const char *v)
{
    return v && *v;
}


/* OpenSSL's reason for the last failure (its error queue emptied), e.g. "no start line". */
static const char *ossl_reason(char *buf, size_t len)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0) last = e; /* the last one is the closest to the cause */
    const char *r = last ? ERR_reason_error_string(last) : NULL;
    snprintf(buf, len, "%s", r ? r : "unknown OpenSSL error");
    return buf;
}

/* The file is there, a regular file, and can be opened: the message names setting and path. */
static bool file_ok(const char *setting, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        sl_errf(err, errlen, "%s \"%s\": %s", setting, path, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        sl_errf(err, errlen, "%s \"%s\": not a regular file", setting, path);
        return false;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sl_errf(err, errlen, "%s \"%s\": %s", setting, path, strerror(errno));
        return false;
    }
    close(fd);
    return true;
}

/* ---- protocols: "secure", "all", "legacy", "tlsv1.2,tlsv1.3", "!tlsv1.0" ---- */

enum { P10 = 1, P11 = 2, P12 = 4, P13 = 8, P_ALL = 15, P_SECURE = P12 | P13 };

static int protocol_bits(const char *name)
{
    static const struct { const char *name; int bits; } names[] = {
        {"tlsv1.0", P10}, {"tlsv1.1", P11}, {"tlsv1.2", P12}, {"tlsv1.3", P13},
        {"all", P_ALL},   {"legacy", P_ALL}, {"secure", P_SECURE}, {"default", P_SECURE},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0) return names[i].bits;
    return 0;
}

/* Parse a protocol list into a bit set; "" means the default (secure). */
static bool parse_protocols(const char *setting, const char *text, int *out, char *err, size_t errlen)
{
    int bits = 0;
    bool any = false;
    const char *p = text ? text : "";
    while (*p) {
        while (*p == ',' || *p == ':' || isspace((unsigned char)*p)) p++;
        if (!*p) break;
        bool neg = *p == '!' || *p == '-';
        if (neg) p++;
        char tok[32];
        size_t n = 0;
        while (p[n] && p[n] != ',' && p[n] != ':' && !isspace((unsigned char)p[n])) n++;
        int b = 0;
        if (n > 0 && n < sizeof(tok)) {
            memcpy(tok, p, n);
            tok[n] = '\0';
            b = protocol_bits(tok);
        }
        if (!b) {
            sl_errf(err, errlen, "%s: unknown protocol \"%.*s\" (expected tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, secure, "
                 "all or legacy)", setting, (int)(n > 40 ? 40 : n), p);
            return false;
        }
        if (!any && neg) bits = P_SECURE; /* "!tlsv1.3" alone: take it from the default */
        bits = neg ? bits & ~b : bits | b;
        any = true;
        p += n;
    }
    if (!any) bits = P_SECURE;
    if (!bits) {
        sl_errf(err, errlen, "%s: \"%s\" leaves no protocol", setting, text);
        return false;
    }
    *out = bits;
    return true;
}

static bool apply_protocols(SSL_CTX *ctx, int bits)
{
    static const int versions[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};
    static const uint64_t no_ops[] = {SSL_OP_NO_TLSv1, SSL_OP_NO_TLSv1_1, SSL_OP_NO_TLSv1_2, SSL_OP_NO_TLSv1_3};
    int lo = -1, hi = -1;
    for (int i = 0; i < 4; i++)
        if (bits & (1 << i)) {
            if (lo < 0) lo = i;
            hi = i;
        }
    if (!SSL_CTX_set_min_proto_version(ctx, versions[lo]) || !SSL_CTX_set_max_proto_version(ctx, versions[hi]))
        return false;
    for (int i = lo; i <= hi; i++) /* a hole in the range ("tlsv1.0,tlsv1.2") */
        if (!(bits & (1 << i))) SSL_CTX_set_options(ctx, no_ops[i]);
    return true;
}

/* ---- ciphers ---- */

static bool apply_ciphers(SSL_CTX *ctx, const char *setting, const char *text, char *err, size_t errlen)
{
    static const char *const keep_default[] = {"", "default", "secure", "fast", "normal"};
    const char *t = text ? text : "";
    for (size_t i = 0; i < sizeof(keep_default) / sizeof(keep_default[0]); i++)
        if (strcasecmp(t, keep_default[i]) == 0) return true; /* OpenSSL's (system-wide) default */
    const char *list = strcasecmp(t, "all") == 0 ? "ALL" : t;
    if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
        char r[128];
        sl_errf(err, errlen, "%s: no usable cipher in \"%s\" (%s)", setting, t, ossl_reason(r, sizeof(r)));
        return false;
    }
    return true;
}

/* TLS 1.3 suites: OpenSSL ignores names it does not know, so each one is checked here. */
static bool apply_ciphers13(SSL_CTX *ctx, const char *setting, const char *text, char *err, size_t errlen)
{
    static const char *const known[] = {"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
                                        "TLS_AES_128_GCM_SHA256", "TLS_AES_128_CCM_8_SHA256",
                                        "TLS_AES_128_CCM_SHA256"};
    if (!set(text)) return true;
    char list[512] = "";
    size_t used = 0;
    const char *p = text;
    while (*p) {
        while (*p == ',' || *p == ':' || isspace((unsigned char)*p)) p++;
        if (!*p) break;
        size_t n = 0;
        while (p[n] && p[n] != ',' && p[n] != ':' && !isspace((unsigned char)p[n])) n++;
        const char *name = NULL;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (strlen(known[i]) == n && strncasecmp(p, known[i], n) == 0) name = known[i];
        if (!name) {
            sl_errf(err, errlen, "%s: unknown TLS 1.3 cipher suite \"%.*s\" (expected TLS_AES_256_GCM_SHA384, "
                 "TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256, TLS_AES_128_CCM_8_SHA256 or "
                 "TLS_AES_128_CCM_SHA256)", setting, (int)(n > 40 ? 40 : n), p);
            return false;
        }
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", used ? ":" : "", name);
        if (used >= sizeof(list)) break;
        p += n;
    }
    if (!used) return true;
    if (SSL_CTX_set_ciphersuites(ctx, list) != 1) {
        char r[128];
        sl_errf(err, errlen, "%s: \"%s\" refused (%s)", setting, text, ossl_reason(r, sizeof(r)));
        return false;
    }
    return true;
}

/* ---- key exchange (accept side) ---- */

static bool apply_dheparams(SSL_CTX *ctx, const char *text, char *err, size_t errlen)
{
    const char *t = set(text) ? text : "auto";
    if (strcasecmp(t, "none") == 0) return SSL_CTX_set_dh_auto(ctx, 0) == 1;
    if (strcasecmp(t, "auto") == 0) return SSL_CTX_set_dh_auto(ctx, 1) == 1;
    if (strcasecmp(t, "legacy") != 0) {
        sl_errf(err, errlen, "client_tls_dheparams: unknown value \"%s\" (expected none, auto or legacy)", t);
        return false;
    }
    /* 1024-bit group of RFC 5114; OpenSSL's security level may refuse it, which is then reported */
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
    EVP_PKEY *dh = NULL;
    char group[] = "dh_1024_160";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
                           OSSL_PARAM_construct_end()};
    bool ok = pc && EVP_PKEY_paramgen_init(pc) == 1 && EVP_PKEY_CTX_set_params(pc, params) == 1 &&
              EVP_PKEY_paramgen(pc, &dh) == 1;
    EVP_PKEY_CTX_free(pc);
    if (ok && SSL_CTX_set0_tmp_dh_pkey(ctx, dh) == 1) return SSL_CTX_set_dh_auto(ctx, 0) == 1;
    EVP_PKEY_free(dh);
    char r[128];
    sl_errf(err, errlen, "client_tls_dheparams: legacy (1024-bit DH) refused by OpenSSL (%s)", ossl_reason(r, sizeof(r)));
    return false;
}

static bool apply_ecdhcurve(SSL_CTX *ctx, const char *text, char *err, size_t errlen)
{
    const char *t = set(text) ? text : "auto";
    if (strcasecmp(t, "auto") == 0) return true;
    char list[256];
    if (strcasecmp(t, "none") == 0) {
        snprintf(list, sizeof(list), "ffdhe2048:ffdhe3072:ffdhe4096:ffdhe6144:ffdhe8192");
    } else {
        snprintf(list, sizeof(list), "%s", t);
        for (char *p = list; *p; p++)
            if (*p == ',') *p = ':';
    }
    if (SSL_CTX_set1_groups_list(ctx, list) != 1) {
        char r[128];
        sl_errf(err, errlen, "client_tls_ecdhcurve: unknown curve or group in \"%s\" (%s)", t, ossl_reason(r, sizeof(r)));
        return false;
    }
    return true;
}

/* ---- certificates ---- */

/* PEM passphrase callback: encrypted keys are not supported (nobody could type the passphrase). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Certificate (chain) and its key, each file checked and then matched against the other. */
static bool load_identity(SSL_CTX *ctx, const side_settings *ss, char *err, size_t errlen)
{
    char kname[48], cname[48], r[128];
    snprintf(kname, sizeof(kname), "%s_key_file", ss->prefix);
    snprintf(cname, sizeof(cname), "%s_cert_file", ss->prefix);
    if (!file_ok(cname, ss->cert_file, err, errlen) || !file_ok(kname, ss->key_file, err, errlen)) return false;
    if (SSL_CTX_use_certificate_chain_file(ctx, ss->cert_file) != 1) {
        sl_errf(err, errlen, "%s \"%s\": no certificate in PEM format (%s)", cname, ss->cert_file, ossl_reason(r, sizeof(r)));
        return false;
    }
    FILE *f = fopen(ss->key_file, "r");
    EVP_PKEY *key = f ? PEM_read_PrivateKey(f, NULL, no_passphrase, NULL) : NULL;
    if (f) fclose(f);
    if (!key) {
        sl_errf(err, errlen, "%s \"%s\": no unencrypted private key in PEM format (%s)", kname, ss->key_file,
             ossl_reason(r, sizeof(r)));
        return false;
    }
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (!cert || X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        EVP_PKEY_free(key);
        sl_errf(err, errlen, "%s \"%s\" does not match %s \"%s\"", kname, ss->key_file, cname, ss->cert_file);
        return false;
    }
    bool ok = SSL_CTX_use_PrivateKey(ctx, key) == 1;
    EVP_PKEY_free(key);
    if (!ok || SSL_CTX_check_private_key(ctx) != 1) {
        sl_errf(err, errlen, "%s \"%s\": refused by OpenSSL (%s)", kname, ss->key_file, ossl_reason(r, sizeof(r)));
        return false;
    }
    return true;
}

static bool load_ca(SSL_CTX *ctx, sl_tls_side side, const side_settings *ss, char *err, size_t errlen)
{
    char name[48], r[128];
    snprintf(name, sizeof(name), "%s_ca_file", ss->prefix);
    if (side == SL_TLS_CONNECT && strcmp(ss->ca_file, "system") == 0) {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            sl_errf(err, errlen, "%s system: the operating system's CA store does not load (%s)", name,
                 ossl_reason(r, sizeof(r)));
            return false;
        }
        return true;
    }
    if (!file_ok(name, ss->ca_file, err, errlen)) return false;
    if (SSL_CTX_load_verify_locations(ctx, ss->ca_file, NULL) != 1) {
        sl_errf(err, errlen, "%s \"%s\": no CA certificate in PEM format (%s)", name, ss->ca_file, ossl_reason(r, sizeof(r)));
        return false;
    }
    if (side != SL_TLS_ACCEPT) return true;
    /* tell clients which CAs their certificate may come from */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ss->ca_file);
    if (!names) {
        sl_errf(err, errlen, "%s \"%s\": no CA certificate in PEM format (%s)", name, ss->ca_file, ossl_reason(r, sizeof(r)));
        return false;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    return true;
}

/* ---- verification and ALPN ---- */

/* allow/prefer/require with a CA file: ask for a client certificate, never refuse the connection
 * for it; OpenSSL still records whether it verified (sl_stream_tls_peer_cn's *verified). */
static int verify_never_refuse(int ok, X509_STORE_CTX *x)
{
    (void)ok, (void)x;
    return 1;
}

/* Pick "postgresql" from the client's ALPN list; a client offering ALPN without it is refused
 * (no_application_protocol), as PostgreSQL 17 does. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl, (void)arg;
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen) break;
        if (n == ALPN_LEN - 1 && memcmp(in + i + 1, alpn_postgresql + 1, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* ---- building ---- */

static bool mode_needs(const side_settings *ss, char *err, size_t errlen)
{
    bool verify = ss->mode >= SL_TLS_VERIFY_CA;
    const char *mode = sl_tls_mode_name(ss->mode);
    if (!strcmp(ss->prefix, "client_tls") && (!set(ss->key_file) || !set(ss->cert_file))) {
        sl_errf(err, errlen, "client_tls_sslmode %s needs client_tls_key_file and client_tls_cert_file", mode);
        return false;
    }
    if (!strcmp(ss->prefix, "server_tls") && set(ss->key_file) != set(ss->cert_file)) {
        sl_errf(err, errlen, "server_tls_key_file and server_tls_cert_file go together (only %s is set)",
             set(ss->key_file) ? "server_tls_key_file" : "server_tls_cert_file");
        return false;
    }
    if (verify && !set(ss->ca_file)) {
        sl_errf(err, errlen, "%s_sslmode %s needs %s_ca_file", ss->prefix, mode, ss->prefix);
        return false;
    }
    return true;
}

static bool configure(SSL_CTX *ctx, sl_tls_side side, const side_settings *ss, char *err, size_t errlen)
{
    char name[48];
    int bits;
    snprintf(name, sizeof(name), "%s_protocols", ss->prefix);
    if (!parse_protocols(name, ss->protocols, &bits, err, errlen)) return false;
    if (!apply_protocols(ctx, bits)) {
        char r[128];
        sl_errf(err, errlen, "%s: \"%s\" refused by OpenSSL (%s)", name, ss->protocols, ossl_reason(r, sizeof(r)));
        return false;
    }
    snprintf(name, sizeof(name), "%s_ciphers", ss->prefix);
    if (!apply_ciphers(ctx, name, ss->ciphers, err, errlen)) return false;
    snprintf(name, sizeof(name), "%s_ciphers", ss->prefix13);
    if (!apply_ciphers13(ctx, name, ss->ciphers13, err, errlen)) return false;

    /* no renegotiation (a read would have to write, a write to read); no resumption (like
     * PostgreSQL); a peer that hangs up without close_notify is an end of file, not an error */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* writes report each record (partial progress), may be retried from a moved buffer; reads take
     * what the socket has in one call (pending() tells the stream about the rest); the read and
     * write buffers (about 17 KB each) are freed whenever they hold nothing, so that an idle TLS
     * client costs about 15 KB, as in PgBouncer, not 32 (a malloc and a free per record) */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    X509_VERIFY_PARAM_set_hostflags(SSL_CTX_get0_param(ctx), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);

    if (side == SL_TLS_ACCEPT) {
        SSL_CTX_set_num_tickets(ctx, 0);
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
        if (!load_identity(ctx, ss, err, errlen)) return false;
        if (set(ss->ca_file) && !load_ca(ctx, side, ss, err, errlen)) return false;
        if (!apply_dheparams(ctx, ss->dheparams, err, errlen) || !apply_ecdhcurve(ctx, ss->ecdhcurve, err, errlen))
            return false;
        if (ss->mode >= SL_TLS_VERIFY_CA)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        else if (set(ss->ca_file))
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_never_refuse);
        else
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    } else {
        if (set(ss->key_file) && !load_identity(ctx, ss, err, errlen)) return false;
        if (set(ss->ca_file) && !load_ca(ctx, side, ss, err, errlen)) return false;
        SSL_CTX_set_verify(ctx, ss->mode >= SL_TLS_VERIFY_CA ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
        if (SSL_CTX_set_alpn_protos(ctx, alpn_postgresql, ALPN_LEN) != 0) {
            sl_errf(err, errlen, "server_tls: cannot set ALPN");
            return false;
        }
    }
    return true;
}

bool sl_tls_ctx_build(const sl_config *cfg, sl_tls_side side, sl_tls_ctx **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen) err[0] = '\0';
    side_settings ss = settings_of(cfg, side);
    if (ss.mode == SL_TLS_DISABLE) return true;
    if (!mode_needs(&ss, err, errlen)) return false;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(side == SL_TLS_ACCEPT ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        char r[128];
        sl_errf(err, errlen, "%s: cannot create a TLS context (%s)", ss.prefix, ossl_reason(r, sizeof(r)));
        return false;
    }
    if (!configure(ctx, side, &ss, err, errlen)) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return false;
    }
    sl_tls_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        SSL_CTX_free(ctx);
        sl_errf(err, errlen, "out of memory");
        return false;
    }
    c->ssl = ctx;
    c->side = side;
    c->mode = ss.mode;
    c->refcount = 1;
    *out = c;
    return true;
}

sl_tls_ctx *sl_tls_ctx_ref(sl_tls_ctx *c)
{
    if (c) __atomic_add_fetch(&c->refcount, 1, __ATOMIC_RELAXED);
    return c;
}

void sl_tls_ctx_unref(sl_tls_ctx *c)
{
    if (!c || __atomic_sub_fetch(&c->refcount, 1, __ATOMIC_ACQ_REL) != 0) return;
    SSL_CTX_free(c->ssl);
    free(c);
}

sl_tls_side sl_tls_ctx_side(const sl_tls_ctx *c)
{
    return c->side;
}

sl_tls_mode sl_tls_ctx_mode(const sl_tls_ctx *c)
{
    return c->mode;
}

static bool build_both(const sl_config *cfg, sl_tls_ctx *out[2], char *err, size_t errlen)
{
    if (!sl_tls_ctx_build(cfg, SL_TLS_ACCEPT, &out[0], err, errlen)) return false;
    if (!sl_tls_ctx_build(cfg, SL_TLS_CONNECT, &out[1], err, errlen)) {
        sl_tls_ctx_unref(out[0]);
        out[0] = NULL;
        return false;
    }
    return true;
}

bool sl_tls_config_check(const sl_config *cfg, char *err, size_t errlen)
{
    sl_tls_ctx *c[2];
    if (!build_both(cfg, c, err, errlen)) return false;
    sl_tls_ctx_unref(c[0]);
    sl_tls_ctx_unref(c[1]);
    return true;
}

/* ---- the contexts new connections start from ---- */

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static sl_tls_ctx *current[2];

bool sl_tls_install(const sl_config *cfg, char *err, size_t errlen)
{
    sl_tls_ctx *c[2];
    if (!build_both(cfg, c, err, errlen)) return false;
    pthread_mutex_lock(&current_lock);
    sl_tls_ctx *old0 = current[0], *old1 = current[1];
    current[0] = c[0];
    current[1] = c[1];
    pthread_mutex_unlock(&current_lock);
    sl_tls_ctx_unref(old0);
    sl_tls_ctx_unref(old1);
    return true;
}

sl_tls_ctx *sl_tls_acquire(sl_tls_side side)
{
    pthread_mutex_lock(&current_lock);
    sl_tls_ctx *c = sl_tls_ctx_ref(current[side == SL_TLS_CONNECT]);
    pthread_mutex_unlock(&current_lock);
    return c;
}

void sl_tls_uninstall(void)
{
    pthread_mutex_lock(&current_lock);
    sl_tls_ctx *old0 = current[0], *old1 = current[1];
    current[0] = current[1] = NULL;
    pthread_mutex_unlock(&current_lock);
    sl_tls_ctx_unref(old0);
    sl_tls_ctx_unref(old1);
}

static bool str_differ(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

bool sl_tls_settings_differ(const sl_config *a, const sl_config *b, sl_tls_side side)
{
    side_settings x = settings_of(a, side), y = settings_of(b, side);
    return x.mode != y.mode || str_differ(x.key_file, y.key_file) || str_differ(x.cert_file, y.cert_file) ||
           str_differ(x.ca_file, y.ca_file) || str_differ(x.protocols, y.protocols) ||
           str_differ(x.ciphers, y.ciphers) || str_differ(x.ciphers13, y.ciphers13) ||
           str_differ(x.dheparams, y.dheparams) || str_differ(x.ecdhcurve, y.ecdhcurve);
}

/* ---- what a mode means ---- */

bool sl_tls_client_must_use_tls(sl_tls_mode mode, bool is_unix)
{
    return !is_unix && mode >= SL_TLS_REQUIRE;
}

bool sl_tls_client_may_use_tls(sl_tls_mode mode, bool is_unix)
{
    return !is_unix && mode != SL_TLS_DISABLE;
}

bool sl_tls_client_cert_required(sl_tls_mode mode)
{
    return mode >= SL_TLS_VERIFY_CA;
}

sl_tls_plan sl_tls_server_plan(sl_tls_mode mode, bool is_unix)
{
    if (is_unix || mode == SL_TLS_DISABLE) return SL_TLS_PLAN_PLAIN;
    if (mode == SL_TLS_ALLOW) return SL_TLS_PLAN_PLAIN_THEN_TLS;
    if (mode == SL_TLS_PREFER) return SL_TLS_PLAN_TLS_OR_PLAIN;
    return SL_TLS_PLAN_TLS_ONLY;
}
