/* test_tls.c - TLS in the net layer, both ways, over socketpairs pumped by hand (non-blocking, no
 * loop, no sleeps; one test runs a real libuv loop): the config checks that refuse what does not
 * load, handshakes and the certificate checks of each sslmode (verify-full with the right and a
 * wrong host name, an unknown CA, an expired certificate), the client certificate's CN, ALPN
 * "postgresql" (and direct TLS without it refused), the SSLRequest answers both ways, data both
 * ways in records larger than 16 KB through partial writes and moved buffers, decrypted bytes
 * left in OpenSSL (pending) reaching an owner that re-arms reading, and tls-server-end-point.
 * Certificates are made at start by tls/make-certs.sh (see there). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "net/stream.h"
#include "net/tls.h"
#include "net/tls_int.h"
#include "net/worker.h"

static char dir[64];                 /* the certificates */
static sl_worker small_worker;       /* 64-byte buffers */
static sl_worker worker;             /* 4096-byte buffers */

static const char *P(const char *name)
{
    static char buf[4][256];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

static int setup_certs(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sl-tls-test-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "sh tls/make-certs.sh %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "tls/make-certs.sh failed\n");
        return -1;
    }
    small_worker.buf_size = 64;
    worker.buf_size = 4096;
    return 0;
}

static int remove_certs(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    sl_tls_uninstall();
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- config helpers ---- */

/* Apply "name=value" pairs; a value starting with @ names a file of the certificate directory. */
static void apply(sl_config *c, const char *const *kv)
{
    for (; kv && *kv; kv++) {
        char name[64];
        const char *eq = strchr(*kv, '=');
        assert_non_null(eq);
        snprintf(name, sizeof(name), "%.*s", (int)(eq - *kv), *kv);
        const char *value = eq[1] == '@' ? P(eq + 2) : eq + 1;
        char err[256];
        const sl_setting *s = sl_setting_find(name);
        if (!s) fail_msg("no setting %s", name);
        if (!sl_setting_set(c, s, value, err, sizeof(err))) fail_msg("%s", err);
    }
}

static sl_config *config(const char *const *kv)
{
    sl_config *c = sl_config_new_default();
    assert_non_null(c);
    apply(c, kv);
    return c;
}

static sl_tls_ctx *ctx_of(sl_tls_side side, const char *const *kv)
{
    sl_config *c = config(kv);
    sl_tls_ctx *ctx = NULL;
    char err[512];
    if (!sl_tls_ctx_build(c, side, &ctx, err, sizeof(err))) fail_msg("build: %s", err);
    sl_config_unref(c);
    assert_non_null(ctx);
    return ctx;
}

/* pgsluice's side for clients, showing `cert` */
static sl_tls_ctx *accept_ctx(const char *mode, const char *cert)
{
    char m[64], k[64], c[64];
    snprintf(m, sizeof(m), "client_tls_sslmode=%s", mode);
    snprintf(k, sizeof(k), "client_tls_key_file=@%s.key", cert);
    snprintf(c, sizeof(c), "client_tls_cert_file=@%s.crt", cert);
    const char *kv[] = {m, k, c, "client_tls_ca_file=@ca.crt", NULL};
    return ctx_of(SL_TLS_ACCEPT, kv);
}

/* pgsluice's side towards servers, optionally with a client certificate */
static sl_tls_ctx *connect_ctx(const char *mode, const char *client_cert)
{
    char m[64], k[64], c[64];
    snprintf(m, sizeof(m), "server_tls_sslmode=%s", mode);
    snprintf(k, sizeof(k), "server_tls_key_file=@%s.key", client_cert ? client_cert : "");
    snprintf(c, sizeof(c), "server_tls_cert_file=@%s.crt", client_cert ? client_cert : "");
    const char *kv[] = {m, "server_tls_ca_file=@ca.crt", client_cert ? k : NULL, c, NULL};
    return ctx_of(SL_TLS_CONNECT, kv);
}

/* ---- two streams over a socketpair ---- */

typedef struct pair {
    sl_stream srv; /* pgsluice as TLS server (a client connection) */
    sl_stream cli; /* pgsluice as TLS client (a server connection) */
} pair;

static void open_pair(pair *p, sl_worker *w)
{
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    sl_stream_init(&p->srv, fds[0]);
    sl_stream_init(&p->cli, fds[1]);
    p->srv.w = p->cli.w = w;
}

static void close_pair(pair *p)
{
    sl_stream_close(&p->srv, NULL);
    sl_stream_close(&p->cli, NULL);
}

/* Drive both handshakes until both finish or one fails; the statuses of each side. */
static void pump_handshake(pair *p, sl_io_status *srv, sl_io_status *cli)
{
    for (int i = 0; i < 100; i++) {
        *cli = sl_stream_handshake(&p->cli);
        *srv = sl_stream_handshake(&p->srv);
        if ((*srv == SL_IO_OK && *cli == SL_IO_OK) || *srv == SL_IO_ERROR || *srv == SL_IO_EOF ||
            *cli == SL_IO_ERROR || *cli == SL_IO_EOF)
            break;
    }
    /* let the side that did not fail see the other's alert */
    for (int i = 0; i < 3; i++) {
        if (*cli == SL_IO_AGAIN) *cli = sl_stream_handshake(&p->cli);
        if (*srv == SL_IO_AGAIN) *srv = sl_stream_handshake(&p->srv);
    }
}

static void start(pair *p, sl_tls_ctx *actx, sl_tls_ctx *cctx, const char *host)
{
    char err[256];
    if (!sl_stream_start_tls_server(&p->srv, actx, false, err, sizeof(err))) fail_msg("%s", err);
    if (!sl_stream_start_tls_client(&p->cli, cctx, host, err, sizeof(err))) fail_msg("%s", err);
    assert_true(sl_stream_is_tls(&p->srv));
    assert_true(sl_stream_tls_handshaking(&p->cli));
}

/* A handshake between a client connection showing `cert` and a server connection in `mode`
 * checking `host`; the client side's result (the server side's is checked to agree). */
static sl_io_status try_handshake(const char *cert, const char *mode, const char *host, char *why, size_t len)
{
    sl_tls_ctx *a = accept_ctx("require", cert), *c = connect_ctx(mode, NULL);
    pair p;
    open_pair(&p, &worker);
    start(&p, a, c, host);
    sl_io_status srv, cli;
    pump_handshake(&p, &srv, &cli);
    snprintf(why, len, "%s", sl_stream_tls_error(&p.cli));
    if (cli == SL_IO_OK) assert_int_equal(srv, SL_IO_OK);
    else assert_int_not_equal(srv, SL_IO_OK);
    close_pair(&p);
    sl_tls_ctx_unref(a);
    sl_tls_ctx_unref(c);
    return cli;
}

static void sha_of_cert_file(const char *file, const EVP_MD *md, uint8_t *out, unsigned *n)
{
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    assert_true(len > 0);
    assert_int_equal(EVP_Digest(der, (size_t)len, out, n, md, NULL), 1);
    OPENSSL_free(der);
    X509_free(x);
}

/* ---- config checks ---- */

typedef struct check_case {
    const char *kv[6];
    const char *expect[3]; /* fragments the message must contain; NULL expect[0]: must pass */
} check_case;

static void test_config_checks_fail_closed(void **state)
{
    (void)state;
    static const check_case cases[] = {
        {{"client_tls_sslmode=require"}, {"client_tls_sslmode require needs client_tls_key_file and client_tls_cert_file"}},
        {{"client_tls_sslmode=require", "client_tls_key_file=@missing.key", "client_tls_cert_file=@server.crt"},
         {"client_tls_key_file \"", "/missing.key\": No such file or directory"}},
        {{"client_tls_sslmode=require", "client_tls_key_file=@server.key", "client_tls_cert_file=@nothere.crt"},
         {"client_tls_cert_file \"", "/nothere.crt\": No such file or directory"}},
        {{"client_tls_sslmode=prefer", "client_tls_key_file=@client.key", "client_tls_cert_file=@server.crt"},
         {"client_tls_key_file \"", "/client.key\" does not match client_tls_cert_file \"", "/server.crt\""}},
        {{"client_tls_sslmode=require", "client_tls_key_file=@server.key", "client_tls_cert_file=@garbage.pem"},
         {"client_tls_cert_file \"", "/garbage.pem\": no certificate in PEM format"}},
        {{"client_tls_sslmode=require", "client_tls_key_file=@garbage.pem", "client_tls_cert_file=@server.crt"},
         {"client_tls_key_file \"", "/garbage.pem\": no unencrypted private key"}},
        {{"client_tls_sslmode=verify-ca", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt"},
         {"client_tls_sslmode verify-ca needs client_tls_ca_file"}},
        {{"client_tls_sslmode=verify-full", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls_ca_file=@garbage.pem"},
         {"client_tls_ca_file \"", "/garbage.pem\": no CA certificate in PEM format"}},
        {{"client_tls_sslmode=verify-ca", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls_ca_file=@"},
         {"client_tls_ca_file \"", "\": not a regular file"}},
        {{"client_tls_sslmode=require", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls_ca_file=@no-ca.crt"},
         {"client_tls_ca_file \"", "/no-ca.crt\": No such file or directory"}},
        {{"client_tls_sslmode=require", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls_protocols=tlsv1.2,sslv3"},
         {"client_tls_protocols: unknown protocol \"sslv3\""}},
        {{"client_tls_sslmode=require", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls_protocols=!tlsv1.2 !tlsv1.3"},
         {"client_tls_protocols: \"!tlsv1.2 !tlsv1.3\" leaves no protocol"}},
        {{"client_tls_sslmode=require", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls_ciphers=NO-SUCH-CIPHER"},
         {"client_tls_ciphers: no usable cipher in \"NO-SUCH-CIPHER\""}},
        {{"client_tls_sslmode=require", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls13_ciphers=TLS_AES_256_GCM_SHA384:TLS_FAKE"},
         {"client_tls13_ciphers: unknown TLS 1.3 cipher suite \"TLS_FAKE\""}},
        {{"client_tls_sslmode=require", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls_dheparams=huge"},
         {"client_tls_dheparams: unknown value \"huge\""}},
        {{"client_tls_sslmode=require", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls_ecdhcurve=nosuchcurve"},
         {"client_tls_ecdhcurve: unknown curve or group in \"nosuchcurve\""}},
        {{"server_tls_sslmode=verify-full"}, {"server_tls_sslmode verify-full needs server_tls_ca_file"}},
        {{"server_tls_sslmode=verify-ca", "server_tls_ca_file=@garbage.pem"},
         {"server_tls_ca_file \"", "/garbage.pem\": no CA certificate in PEM format"}},
        {{"server_tls_sslmode=require", "server_tls_key_file=@client.key"},
         {"server_tls_key_file and server_tls_cert_file go together (only server_tls_key_file is set)"}},
        {{"server_tls_sslmode=require", "server_tls_key_file=@server.key", "server_tls_cert_file=@client.crt"},
         {"server_tls_key_file \"", "/server.key\" does not match server_tls_cert_file \""}},
        {{"server_tls_protocols=tlsv2"}, {"server_tls_protocols: unknown protocol \"tlsv2\""}},
        {{"server_tls13_ciphers=TLS_AES_128_GCM_SHA999"}, {"server_tls13_ciphers: unknown TLS 1.3 cipher suite"}},
        /* these load */
        {{NULL}, {NULL}}, /* the defaults: client disable, server prefer */
        {{"client_tls_sslmode=disable", "client_tls_key_file=@missing.key"}, {NULL}}, /* unused when disabled */
        {{"server_tls_sslmode=disable", "server_tls_ca_file=@missing.crt"}, {NULL}},
        {{"client_tls_sslmode=verify-full", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls_ca_file=@ca.crt", "client_tls_protocols=tlsv1.2:tlsv1.3", "client_tls_ecdhcurve=prime256v1,X25519"},
         {NULL}},
        {{"client_tls_sslmode=allow", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls_protocols=legacy", "client_tls_ciphers=HIGH:!aNULL", "client_tls_dheparams=none"},
         {NULL}},
        {{"client_tls_sslmode=prefer", "client_tls_key_file=@server.key", "client_tls_cert_file=@server.crt",
          "client_tls13_ciphers=TLS_AES_128_GCM_SHA256,TLS_CHACHA20_POLY1305_SHA256", "client_tls_ecdhcurve=none",
          "client_tls_ciphers=all"},
         {NULL}},
        {{"server_tls_sslmode=verify-full", "server_tls_ca_file=system", "server_tls_protocols=all"}, {NULL}},
        {{"server_tls_sslmode=verify-ca", "server_tls_ca_file=@ca.crt", "server_tls_key_file=@client.key",
          "server_tls_cert_file=@client.crt", "server_tls_ciphers=secure"},
         {NULL}},
    };
    if (geteuid() != 0) { /* root reads any file: a file without read permission fails for others */
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "cp %s %s && chmod 000 %s", P("ca.crt"), P("noread.crt"), P("noread.crt"));
        assert_int_equal(system(cmd), 0);
        const char *kv[] = {"server_tls_sslmode=verify-ca", "server_tls_ca_file=@noread.crt", NULL};
        sl_config *c = config(kv);
        char err[512] = "";
        assert_false(sl_tls_config_check(c, err, sizeof(err)));
        assert_non_null(strstr(err, "/noread.crt\": Permission denied"));
        sl_config_unref(c);
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_config *c = config(cases[i].kv);
        char err[512] = "";
        bool ok = sl_tls_config_check(c, err, sizeof(err));
        if (!cases[i].expect[0]) {
            if (!ok) fail_msg("case %zu refused: %s", i, err);
        } else {
            if (ok) fail_msg("case %zu loaded; expected \"%s\"", i, cases[i].expect[0]);
            for (int k = 0; k < 3 && cases[i].expect[k]; k++)
                if (!strstr(err, cases[i].expect[k]))
                    fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].expect[k]);
        }
        sl_config_unref(c);
    }
}

/* Contexts: built per side, NULL when disabled, reference counted; install keeps the old ones
 * when the new config fails, and a connection keeps the context it started with. */
static void test_install_and_acquire(void **state)
{
    (void)state;
    const char *good[] = {"client_tls_sslmode=require", "client_tls_key_file=@server.key",
                          "client_tls_cert_file=@server.crt", "server_tls_sslmode=verify-full",
                          "server_tls_ca_file=@ca.crt", NULL};
    sl_config *c = config(good);
    char err[512];
    assert_true(sl_tls_install(c, err, sizeof(err)));
    sl_tls_ctx *a = sl_tls_acquire(SL_TLS_ACCEPT), *k = sl_tls_acquire(SL_TLS_CONNECT);
    assert_non_null(a);
    assert_non_null(k);
    assert_int_equal(sl_tls_ctx_mode(a), SL_TLS_REQUIRE);
    assert_int_equal(sl_tls_ctx_side(k), SL_TLS_CONNECT);
    assert_int_equal(sl_tls_ctx_mode(k), SL_TLS_VERIFY_FULL);

    /* a RELOAD that breaks the key file is refused and the old contexts stay */
    const char *bad[] = {"client_tls_key_file=@missing.key", NULL};
    apply(c, bad);
    assert_false(sl_tls_install(c, err, sizeof(err)));
    assert_non_null(strstr(err, "missing.key"));
    sl_tls_ctx *a2 = sl_tls_acquire(SL_TLS_ACCEPT);
    assert_ptr_equal(a2, a);
    sl_tls_ctx_unref(a2);

    /* one that disables the client side installs; the old context still serves a connection */
    const char *off[] = {"client_tls_sslmode=disable", NULL};
    apply(c, off);
    assert_true(sl_tls_install(c, err, sizeof(err)));
    assert_null(sl_tls_acquire(SL_TLS_ACCEPT));
    pair p;
    open_pair(&p, &worker);
    start(&p, a, k, "localhost");
    sl_tls_ctx_unref(a); /* the connection holds its own reference */
    sl_tls_ctx_unref(k);
    sl_io_status srv, cli;
    pump_handshake(&p, &srv, &cli);
    assert_int_equal(srv, SL_IO_OK);
    assert_int_equal(cli, SL_IO_OK);
    close_pair(&p);
    sl_tls_uninstall();
    assert_null(sl_tls_acquire(SL_TLS_CONNECT));

    /* what changes ask for a reconnect */
    sl_config *d = sl_config_clone(c);
    assert_false(sl_tls_settings_differ(c, d, SL_TLS_CONNECT));
    const char *ciph[] = {"server_tls_ciphers=HIGH", NULL};
    apply(d, ciph);
    assert_true(sl_tls_settings_differ(c, d, SL_TLS_CONNECT));
    assert_false(sl_tls_settings_differ(c, d, SL_TLS_ACCEPT));
    sl_config_unref(d);
    sl_config_unref(c);
}

static void test_what_modes_mean(void **state)
{
    (void)state;
    assert_false(sl_tls_client_may_use_tls(SL_TLS_DISABLE, false));
    assert_true(sl_tls_client_may_use_tls(SL_TLS_ALLOW, false));
    assert_false(sl_tls_client_may_use_tls(SL_TLS_REQUIRE, true)); /* never over a Unix socket */
    assert_false(sl_tls_client_must_use_tls(SL_TLS_PREFER, false));
    assert_true(sl_tls_client_must_use_tls(SL_TLS_REQUIRE, false));
    assert_false(sl_tls_client_must_use_tls(SL_TLS_VERIFY_FULL, true));
    assert_true(sl_tls_client_cert_required(SL_TLS_VERIFY_CA));
    assert_false(sl_tls_client_cert_required(SL_TLS_REQUIRE));
    assert_int_equal(sl_tls_server_plan(SL_TLS_DISABLE, false), SL_TLS_PLAN_PLAIN);
    assert_int_equal(sl_tls_server_plan(SL_TLS_ALLOW, false), SL_TLS_PLAN_PLAIN_THEN_TLS);
    assert_int_equal(sl_tls_server_plan(SL_TLS_PREFER, false), SL_TLS_PLAN_TLS_OR_PLAIN);
    assert_int_equal(sl_tls_server_plan(SL_TLS_REQUIRE, false), SL_TLS_PLAN_TLS_ONLY);
    assert_int_equal(sl_tls_server_plan(SL_TLS_VERIFY_FULL, false), SL_TLS_PLAN_TLS_ONLY);
    assert_int_equal(sl_tls_server_plan(SL_TLS_VERIFY_FULL, true), SL_TLS_PLAN_PLAIN);
    uint8_t hello = 0x16, startup[4] = {0, 0, 0, 8};
    assert_true(sl_tls_is_direct_hello(&hello, 1));
    assert_false(sl_tls_is_direct_hello(startup, 4));
    assert_false(sl_tls_is_direct_hello(&hello, 0));
}

/* ---- handshakes and certificates ---- */

static void test_handshake_alpn_and_end_point(void **state)
{
    (void)state;
    sl_tls_ctx *a = accept_ctx("require", "server"), *c = connect_ctx("verify-full", NULL);
    pair p;
    open_pair(&p, &worker);
    start(&p, a, c, "localhost");
    sl_io_status srv, cli;
    pump_handshake(&p, &srv, &cli);
    assert_int_equal(srv, SL_IO_OK);
    assert_int_equal(cli, SL_IO_OK);
    assert_false(sl_stream_tls_handshaking(&p.srv));
    char buf[128];
    assert_string_equal(sl_stream_tls_alpn(&p.srv, buf, sizeof(buf)), "postgresql");
    assert_string_equal(sl_stream_tls_alpn(&p.cli, buf, sizeof(buf)), "postgresql");
    sl_stream_tls_describe(&p.srv, buf, sizeof(buf));
    assert_true(strncmp(buf, "TLSv1.3/TLS_", 12) == 0);
    assert_non_null(strstr(buf, "/ECDH="));

    /* SNI carries the host name */
    sl_tls_conn *t = p.srv.tr_state;
    assert_string_equal(SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name), "localhost");

    /* tls-server-end-point: SHA-256 of our certificate's DER, the same on both ends */
    uint8_t want[EVP_MAX_MD_SIZE], got[64], got2[64];
    unsigned wn = 0;
    size_t gn = 0, gn2 = 0;
    sha_of_cert_file(P("server.crt"), EVP_sha256(), want, &wn);
    assert_true(sl_stream_tls_server_end_point(&p.srv, got, sizeof(got), &gn));
    assert_int_equal(gn, 32);
    assert_memory_equal(got, want, 32);
    assert_true(sl_stream_tls_server_end_point(&p.cli, got2, sizeof(got2), &gn2));
    assert_int_equal(gn2, 32);
    assert_memory_equal(got2, want, 32);

    /* no client certificate was shown */
    char cn[64];
    bool verified = true;
    assert_false(sl_stream_tls_peer_cn(&p.srv, cn, sizeof(cn), &verified));
    assert_false(verified);
    /* a plain stream has none of this */
    sl_stream plain;
    sl_stream_init(&plain, -1);
    assert_false(sl_stream_is_tls(&plain));
    assert_false(sl_stream_tls_server_end_point(&plain, got, sizeof(got), &gn));
    assert_int_equal(sl_stream_handshake(&plain), SL_IO_OK);
    close_pair(&p);
    sl_tls_ctx_unref(a);
    sl_tls_ctx_unref(c);
}

/* A certificate signed with SHA-384: the end point hash is SHA-384 (RFC 5929). */
static void test_end_point_follows_a_stronger_signature_hash(void **state)
{
    (void)state;
    sl_tls_ctx *a = accept_ctx("require", "strong"), *c = connect_ctx("require", NULL);
    pair p;
    open_pair(&p, &worker);
    start(&p, a, c, "127.0.0.1");
    sl_io_status srv, cli;
    pump_handshake(&p, &srv, &cli);
    assert_int_equal(cli, SL_IO_OK);
    sl_tls_conn *t = p.srv.tr_state;
    assert_null(SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name)); /* no SNI for an address */
    uint8_t want[EVP_MAX_MD_SIZE], got[64];
    unsigned wn = 0;
    size_t gn = 0;
    sha_of_cert_file(P("strong.crt"), EVP_sha384(), want, &wn);
    assert_true(sl_stream_tls_server_end_point(&p.srv, got, sizeof(got), &gn));
    assert_int_equal(gn, 48);
    assert_memory_equal(got, want, 48);
    assert_false(sl_stream_tls_server_end_point(&p.srv, got, 32, &gn)); /* too small a buffer */
    close_pair(&p);
    sl_tls_ctx_unref(a);
    sl_tls_ctx_unref(c);
}

static void test_server_certificate_checks(void **state)
{
    (void)state;
    char why[256];
    /* verify-full: the name and the address in the certificate match, another name does not */
    assert_int_equal(try_handshake("server", "verify-full", "localhost", why, sizeof(why)), SL_IO_OK);
    assert_int_equal(try_handshake("server", "verify-full", "127.0.0.1", why, sizeof(why)), SL_IO_OK);
    assert_int_equal(try_handshake("wronghost", "verify-full", "localhost", why, sizeof(why)), SL_IO_ERROR);
    assert_non_null(strstr(why, "certificate verify failed: hostname mismatch"));
    assert_int_equal(try_handshake("server", "verify-full", "127.0.0.2", why, sizeof(why)), SL_IO_ERROR);
    assert_non_null(strstr(why, "IP address mismatch"));
    /* verify-ca checks the chain only */
    assert_int_equal(try_handshake("wronghost", "verify-ca", "localhost", why, sizeof(why)), SL_IO_OK);
    assert_int_equal(try_handshake("stranger", "verify-ca", "localhost", why, sizeof(why)), SL_IO_ERROR);
    assert_non_null(strstr(why, "certificate verify failed: unable to get local issuer certificate"));
    assert_int_equal(try_handshake("expired", "verify-full", "localhost", why, sizeof(why)), SL_IO_ERROR);
    assert_non_null(strstr(why, "certificate verify failed: certificate has expired"));
    assert_int_equal(try_handshake("expired", "verify-ca", "localhost", why, sizeof(why)), SL_IO_ERROR);
    /* prefer and require do not validate (PgBouncer's meaning) */
    assert_int_equal(try_handshake("stranger", "require", "localhost", why, sizeof(why)), SL_IO_OK);
    assert_int_equal(try_handshake("expired", "prefer", "localhost", why, sizeof(why)), SL_IO_OK);
}

/* Client certificates: verify-ca demands one signed by the CA; allow/prefer/require ask for one
 * (a CA file is set) and report whether it verified without refusing the connection. */
static void test_client_certificates(void **state)
{
    (void)state;
    static const struct { const char *mode, *cert, *cn; bool ok, verified; } cases[] = {
        {"verify-ca", "client", "alice", true, true},
        {"verify-full", "client", "alice", true, true},
        {"verify-ca", "stranger", NULL, false, false},
        {"verify-ca", NULL, NULL, false, false},
        {"require", "client", "alice", true, true},
        {"require", "stranger", "localhost", true, false},
        {"prefer", NULL, NULL, true, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_tls_ctx *a = accept_ctx(cases[i].mode, "server"), *c = connect_ctx("verify-full", cases[i].cert);
        pair p;
        open_pair(&p, &worker);
        start(&p, a, c, "localhost");
        sl_io_status srv, cli;
        pump_handshake(&p, &srv, &cli);
        if (cases[i].ok != (srv == SL_IO_OK))
            fail_msg("case %zu: server side %d (%s)", i, srv, sl_stream_tls_error(&p.srv));
        if (!cases[i].ok) {
            const char *why = sl_stream_tls_error(&p.srv);
            assert_true(strstr(why, "certificate") != NULL);
        }
        char cn[64];
        bool verified = !cases[i].verified;
        bool has = sl_stream_tls_peer_cn(&p.srv, cn, sizeof(cn), &verified);
        if (cases[i].ok && cases[i].cn) {
            assert_true(has);
            assert_string_equal(cn, cases[i].cn);
            assert_int_equal(verified, cases[i].verified);
            assert_false(sl_stream_tls_peer_cn(&p.srv, cn, 3, &verified)); /* does not fit */
        } else {
            assert_false(has);
        }
        close_pair(&p);
        sl_tls_ctx_unref(a);
        sl_tls_ctx_unref(c);
    }
}

static void test_protocol_settings_apply(void **state)
{
    (void)state;
    const char *a12[] = {"client_tls_sslmode=require", "client_tls_key_file=@server.key",
                         "client_tls_cert_file=@server.crt", "client_tls_protocols=tlsv1.2", NULL};
    const char *c13[] = {"server_tls_sslmode=require", "server_tls_protocols=tlsv1.3", NULL};
    const char *csec[] = {"server_tls_sslmode=require", NULL};
    sl_tls_ctx *a = ctx_of(SL_TLS_ACCEPT, a12), *c = ctx_of(SL_TLS_CONNECT, c13), *s = ctx_of(SL_TLS_CONNECT, csec);
    pair p;
    open_pair(&p, &worker);
    start(&p, a, s, "localhost");
    sl_io_status srv, cli;
    pump_handshake(&p, &srv, &cli);
    assert_int_equal(cli, SL_IO_OK);
    char buf[128];
    assert_true(strncmp(sl_stream_tls_describe(&p.cli, buf, sizeof(buf)), "TLSv1.2/", 8) == 0);
    close_pair(&p);
    open_pair(&p, &worker);
    start(&p, a, c, "localhost");
    pump_handshake(&p, &srv, &cli);
    assert_int_equal(cli, SL_IO_ERROR); /* no version in common */
    close_pair(&p);
    sl_tls_ctx_unref(a);
    sl_tls_ctx_unref(c);
    sl_tls_ctx_unref(s);
}

/* ---- negotiation ---- */

/* SSLRequest -> 'S' -> TLS, both ends through the stream functions; plaintext sent after the
 * SSLRequest, or after the 'S', is refused. */
static void test_ssl_request_both_ways(void **state)
{
    (void)state;
    sl_tls_ctx *a = accept_ctx("require", "server"), *c = connect_ctx("verify-full", NULL);
    char err[256];
    pair p;
    open_pair(&p, &worker);
    sl_stream_request_encryption(&p.cli);
    assert_int_equal(sl_stream_flush(&p.cli, NULL), SL_IO_OK);
    assert_int_equal(sl_stream_read(&p.srv), SL_IO_OK);
    assert_int_equal(p.srv.end - p.srv.pos, 8);
    assert_int_equal(sl_get_u32(p.srv.buf + p.srv.pos + 4), SL_SSL_CODE);
    p.srv.pos = p.srv.parse = p.srv.pos + 8; /* the pooler took the SSLRequest */
    assert_int_equal(sl_stream_encryption_answer(&p.cli), SL_TLS_ANSWER_NEED_MORE);
    if (!sl_stream_accept_encryption(&p.srv, a, err, sizeof(err))) fail_msg("%s", err);
    assert_int_equal(sl_stream_read(&p.cli), SL_IO_OK);
    assert_int_equal(sl_stream_encryption_answer(&p.cli), SL_TLS_ANSWER_YES);
    if (!sl_stream_start_tls_client(&p.cli, c, "localhost", err, sizeof(err))) fail_msg("%s", err);
    sl_io_status srv, cli;
    pump_handshake(&p, &srv, &cli);
    assert_int_equal(srv, SL_IO_OK);
    assert_int_equal(cli, SL_IO_OK);
    /* then a startup packet goes over TLS */
    sl_pb_bytes(&p.cli.out, "\0\0\0\x08\0\x03\0\0", 8);
    assert_int_equal(sl_stream_flush(&p.cli, NULL), SL_IO_OK);
    sl_stream_maybe_release_buf(&p.srv);
    assert_int_equal(sl_stream_read(&p.srv), SL_IO_OK);
    assert_int_equal(p.srv.end - p.srv.pos, 8);
    assert_memory_equal(p.srv.buf + p.srv.pos, "\0\0\0\x08\0\x03\0\0", 8);
    close_pair(&p);

    /* the client pipelines plaintext after its SSLRequest (CVE-2021-23214) */
    open_pair(&p, &worker);
    sl_stream_request_encryption(&p.cli);
    sl_pb_bytes(&p.cli.out, "QQQQ", 4);
    assert_int_equal(sl_stream_flush(&p.cli, NULL), SL_IO_OK);
    assert_int_equal(sl_stream_read(&p.srv), SL_IO_OK);
    p.srv.pos = p.srv.parse = p.srv.pos + 8;
    assert_false(sl_stream_accept_encryption(&p.srv, a, err, sizeof(err)));
    assert_string_equal(err, "received unencrypted data after SSL request");
    assert_false(sl_stream_is_tls(&p.srv));
    close_pair(&p);

    /* the answers a server may give */
    static const struct { const char *bytes; size_t n; sl_tls_answer want; } answers[] = {
        {"N", 1, SL_TLS_ANSWER_NO}, {"E", 1, SL_TLS_ANSWER_ERROR}, {"X", 1, SL_TLS_ANSWER_BAD},
        {"S\x16\x03", 3, SL_TLS_ANSWER_BAD}, /* bytes injected after 'S' (CVE-2021-23222) */
    };
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        open_pair(&p, &worker);
        assert_int_equal(write(p.srv.fd, answers[i].bytes, answers[i].n), (ssize_t)answers[i].n);
        assert_int_equal(sl_stream_read(&p.cli), SL_IO_OK);
        assert_int_equal(sl_stream_encryption_answer(&p.cli), answers[i].want);
        if (answers[i].want == SL_TLS_ANSWER_NO) assert_int_equal(p.cli.end - p.cli.pos, 0);
        close_pair(&p);
    }
    /* and a client stream refuses to start TLS over unread plaintext */
    open_pair(&p, &worker);
    assert_int_equal(write(p.srv.fd, "SX", 2), 2);
    assert_int_equal(sl_stream_read(&p.cli), SL_IO_OK);
    p.cli.pos++;
    assert_false(sl_stream_start_tls_client(&p.cli, c, "localhost", err, sizeof(err)));
    assert_string_equal(err, "received unencrypted data after the SSL answer");
    close_pair(&p);
    sl_tls_ctx_unref(a);
    sl_tls_ctx_unref(c);
}

/* Direct TLS (PostgreSQL 17): the ClientHello arrives where a startup packet would; the bytes
 * already read go to OpenSSL first; ALPN "postgresql" is required. */
static void test_direct_tls(void **state)
{
    (void)state;
    sl_tls_ctx *a = accept_ctx("require", "server"), *c = connect_ctx("verify-full", NULL);
    char err[256];
    for (int variant = 0; variant < 3; variant++) {
        pair p;
        open_pair(&p, &small_worker); /* 64-byte buffer: the ClientHello needs several reads */
        if (!sl_stream_start_tls_client(&p.cli, c, "localhost", err, sizeof(err))) fail_msg("%s", err);
        sl_tls_conn *t = p.cli.tr_state;
        if (variant == 1) SSL_set_alpn_protos(t->ssl, NULL, 0);                          /* no ALPN */
        if (variant == 2) SSL_set_alpn_protos(t->ssl, (const unsigned char *)"\x08http/1.1", 9); /* another */
        assert_int_equal(sl_stream_handshake(&p.cli), SL_IO_AGAIN); /* ClientHello sent */
        assert_int_equal(sl_stream_read(&p.srv), SL_IO_OK);
        assert_true(sl_tls_is_direct_hello(p.srv.buf + p.srv.pos, p.srv.end - p.srv.pos));
        assert_int_equal(p.srv.end - p.srv.pos, 64); /* only part of it */
        if (!sl_stream_start_tls_server(&p.srv, a, true, err, sizeof(err))) fail_msg("%s", err);
        assert_int_equal(p.srv.end - p.srv.pos, 0);
        sl_io_status srv, cli;
        pump_handshake(&p, &srv, &cli);
        if (variant == 0) {
            assert_int_equal(srv, SL_IO_OK);
            assert_int_equal(cli, SL_IO_OK);
            char buf[32];
            assert_string_equal(sl_stream_tls_alpn(&p.srv, buf, sizeof(buf)), "postgresql");
            /* and data flows */
            sl_pb_bytes(&p.cli.out, "hello", 5);
            assert_int_equal(sl_stream_flush(&p.cli, NULL), SL_IO_OK);
            assert_int_equal(sl_stream_read(&p.srv), SL_IO_OK);
            assert_memory_equal(p.srv.buf + p.srv.pos, "hello", 5);
        } else {
            assert_int_equal(srv, SL_IO_ERROR);
            /* without ALPN the client may finish first (TLS 1.3); the server then closes */
            if (variant == 2) assert_int_not_equal(cli, SL_IO_OK); /* no_application_protocol alert */
            const char *why = sl_stream_tls_error(&p.srv);
            if (variant == 1) assert_non_null(strstr(why, "direct TLS without ALPN \"postgresql\""));
            else assert_non_null(strstr(why, "TLS handshake"));
        }
        close_pair(&p);
    }
    sl_tls_ctx_unref(a);
    sl_tls_ctx_unref(c);
}

/* ---- data ---- */

static void handshaken(pair *p, sl_worker *w, sl_tls_ctx **a, sl_tls_ctx **c)
{
    *a = accept_ctx("require", "server");
    *c = connect_ctx("verify-full", NULL);
    open_pair(p, w);
    start(p, *a, *c, "localhost");
    sl_io_status srv, cli;
    pump_handshake(p, &srv, &cli);
    assert_int_equal(srv, SL_IO_OK);
    assert_int_equal(cli, SL_IO_OK);
}

/* Read what `to` has into got (consuming it); returns bytes added. */
static size_t take(sl_stream *to, uint8_t *got, size_t have, size_t cap)
{
    size_t added = 0;
    for (;;) {
        sl_io_status st = sl_stream_read(to);
        if (st != SL_IO_OK) {
            assert_int_equal(st, SL_IO_AGAIN);
            return added;
        }
        size_t n = to->end - to->pos;
        assert_true(have + added + n <= cap);
        memcpy(got + have + added, to->buf + to->pos, n);
        added += n;
        to->pos = to->parse = to->end;
    }
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 16);
    }
}

/* One direction: 100 bytes of pooler output then 1 MB forwarded from another stream's buffer, then
 * 300 KB of pooler output that grows (and moves) while a record is stuck; small socket buffers, so
 * records go out in pieces and writes block. Everything arrives, in order. */
static void send_and_check(sl_stream *from, sl_stream *to)
{
    int small = 4096;
    setsockopt(from->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(to->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    size_t head = 100, fwd = 1024 * 1024, tail = 300 * 1024, extra = 50 * 1024;
    size_t total = head + fwd + tail + extra;
    uint8_t *want = malloc(total), *got = malloc(total);
    fill(want, total, (unsigned)from->fd);

    /* a forwarding source: only its buf, pos and parse matter to the flush */
    sl_stream src;
    sl_stream_init(&src, -1);
    src.buf = malloc(fwd);
    memcpy(src.buf, want + head, fwd);
    src.pos = 0;
    src.parse = src.end = (uint32_t)fwd;
    sl_pb_bytes(&from->out, want, head);
    size_t have = 0;
    int blocked = 0, moved = 0, rounds = 0;
    sl_io_status st;
    while ((st = sl_stream_flush(from, &src)) == SL_IO_AGAIN && rounds++ < 100000) {
        blocked++;
        if (blocked % 7 == 0 && src.parse > src.pos) { /* the source's buffer moves (compaction) */
            uint32_t n = src.parse - src.pos;
            uint8_t *nb = malloc(n);
            memcpy(nb, src.buf + src.pos, n);
            free(src.buf);
            src.buf = nb;
            src.pos = 0;
            src.parse = src.end = n;
            moved++;
        }
        have += take(to, got, have, total);
    }
    assert_int_equal(st, SL_IO_OK);
    assert_true(blocked > 0);
    assert_true(moved > 0);
    free(src.buf);

    /* pooler output alone, appended to while a record is stuck (the queue's buffer reallocates) */
    sl_pb_bytes(&from->out, want + head + fwd, tail);
    bool appended = false;
    rounds = 0;
    while ((st = sl_stream_flush(from, NULL)) == SL_IO_AGAIN && rounds++ < 100000) {
        if (!appended) {
            sl_pb_bytes(&from->out, want + head + fwd + tail, extra);
            appended = true;
        }
        have += take(to, got, have, total);
    }
    assert_int_equal(st, SL_IO_OK);
    assert_true(appended);
    while (have < total && rounds++ < 100000) have += take(to, got, have, total);
    assert_int_equal(have, total);
    assert_memory_equal(got, want, total);
    free(want);
    free(got);
}

static void test_data_both_ways_through_partial_writes(void **state)
{
    (void)state;
    pair p;
    sl_tls_ctx *a, *c;
    handshaken(&p, &worker, &a, &c);
    send_and_check(&p.srv, &p.cli);
    send_and_check(&p.cli, &p.srv);
    /* an orderly close: close_notify, then end of file on the other side */
    sl_stream_shutdown(&p.srv);
    sl_stream_maybe_release_buf(&p.cli);
    assert_int_equal(sl_stream_read(&p.cli), SL_IO_EOF);
    close_pair(&p);
    sl_tls_ctx_unref(a);
    sl_tls_ctx_unref(c);
}

/* A record OpenSSL took but could not send must be offered again first; a queue that lost those
 * bytes is an error, not a silently corrupted stream. */
static void test_a_stuck_record_must_come_again(void **state)
{
    (void)state;
    pair p;
    sl_tls_ctx *a, *c;
    handshaken(&p, &worker, &a, &c);
    int small = 4096;
    setsockopt(p.srv.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(p.cli.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    static uint8_t big[256 * 1024];
    sl_pb_bytes(&p.srv.out, big, sizeof(big));
    assert_int_equal(sl_stream_flush(&p.srv, NULL), SL_IO_AGAIN);
    struct iovec iov = {.iov_base = big, .iov_len = 10};
    size_t n = 99;
    assert_int_equal(p.srv.tr->writev(&p.srv, &iov, 1, &n), SL_TR_ERROR);
    assert_int_equal(n, 0);
    assert_int_equal(p.srv.err, EPROTO);
    assert_non_null(strstr(sl_stream_tls_error(&p.srv), "gone from the queue"));
    close_pair(&p);
    sl_tls_ctx_unref(a);
    sl_tls_ctx_unref(c);
}

/* A 16 KB record read through a 64-byte buffer: the rest waits in OpenSSL (pending), and reads
 * hand it out without any new socket data. */
static void test_pending_after_a_large_record(void **state)
{
    (void)state;
    pair p;
    sl_tls_ctx *a, *c;
    handshaken(&p, &small_worker, &a, &c);
    uint8_t rec[SL_TLS_RECORD];
    fill(rec, sizeof(rec), 7);
    sl_pb_bytes(&p.srv.out, rec, sizeof(rec));
    assert_int_equal(sl_stream_flush(&p.srv, NULL), SL_IO_OK);
    assert_int_equal(sl_stream_read(&p.cli), SL_IO_OK);
    assert_int_equal(p.cli.end - p.cli.pos, 64);
    assert_int_equal(p.cli.tr->pending(&p.cli), sizeof(rec) - 64);
    assert_false(sl_stream_idle_and_open(&p.cli)); /* bytes are waiting */
    uint8_t got[SL_TLS_RECORD];
    size_t have = 0;
    while (p.cli.end > p.cli.pos || p.cli.tr->pending(&p.cli)) {
        if (p.cli.end == p.cli.pos) assert_int_equal(sl_stream_read(&p.cli), SL_IO_OK);
        memcpy(got + have, p.cli.buf + p.cli.pos, p.cli.end - p.cli.pos);
        have += p.cli.end - p.cli.pos;
        p.cli.pos = p.cli.parse = p.cli.end;
    }
    assert_int_equal(have, sizeof(rec));
    assert_memory_equal(got, rec, sizeof(rec));
    assert_int_equal(p.cli.tr->pending(&p.cli), 0);
    assert_int_equal(sl_stream_read(&p.cli), SL_IO_AGAIN);
    assert_true(sl_stream_idle_and_open(&p.cli));
    close_pair(&p);
    sl_tls_ctx_unref(a);
    sl_tls_ctx_unref(c);
}

/* Records that arrived together are read together: one read takes every record OpenSSL read
 * ahead, as far as the buffer has room (a COPY's records then leave in one write), stops at a full
 * buffer in the middle of a record, and loses or repeats nothing at the boundaries. */
static void test_records_read_ahead_come_in_one_read(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        sl_worker *w = round == 0 ? &worker : &small_worker;
        pair p;
        sl_tls_ctx *a, *c;
        handshaken(&p, w, &a, &c);
        enum { NREC = 12, RECLEN = 300 };
        uint8_t want[NREC * RECLEN], got[NREC * RECLEN];
        fill(want, sizeof(want), 11 + (unsigned)round);
        for (int i = 0; i < NREC; i++) { /* each flush is a record of its own */
            sl_pb_bytes(&p.srv.out, want + i * RECLEN, RECLEN);
            assert_int_equal(sl_stream_flush(&p.srv, NULL), SL_IO_OK);
        }
        assert_int_equal(sl_stream_read(&p.cli), SL_IO_OK);
        size_t first = p.cli.end - p.cli.pos;
        if (round == 0)
            assert_int_equal(first, sizeof(want)); /* all twelve in one read */
        else
            assert_int_equal(first, 64); /* a full buffer, across a record's end */
        size_t have = 0;
        for (int guard = 0; have < sizeof(want) && guard < 10000; guard++) {
            if (p.cli.end == p.cli.pos) {
                sl_io_status st = sl_stream_read(&p.cli);
                assert_int_equal(st, SL_IO_OK);
            }
            memcpy(got + have, p.cli.buf + p.cli.pos, p.cli.end - p.cli.pos);
            have += p.cli.end - p.cli.pos;
            p.cli.pos = p.cli.parse = p.cli.end;
        }
        assert_int_equal(have, sizeof(want));
        assert_memory_equal(got, want, sizeof(want));
        assert_int_equal(sl_stream_read(&p.cli), SL_IO_AGAIN);
        close_pair(&p);
        sl_tls_ctx_unref(a);
        sl_tls_ctx_unref(c);
    }
}

/* ---- the poll loop ---- */

static struct {
    size_t got;
    bool stop_reading;
    int events[8];
    int nevents;
} owner;

static void owner_cb(sl_stream *s, int events)
{
    if (owner.nevents < 8) owner.events[owner.nevents++] = events;
    if (events & UV_READABLE) {
        sl_io_status st = sl_stream_read(s);
        if (st == SL_IO_OK) {
            owner.got += s->end - s->pos;
            s->pos = s->parse = s->end;
        }
    }
    if (owner.stop_reading) sl_stream_set_poll(s, 0); /* backpressure: its peer cannot take more */
}

static void run_until(uv_loop_t *loop, size_t want)
{
    for (int i = 0; i < 200 && owner.got < want; i++) uv_run(loop, UV_RUN_NOWAIT);
}

/* The owner reads part of a record and stops (backpressure); when it asks to read again, the rest
 * (held by OpenSSL, not the socket) reaches it without any new socket data; afterwards the stream
 * polls only for what the owner wants. */
static void test_decrypted_bytes_reach_an_owner_that_reads_again(void **state)
{
    (void)state;
    sl_worker w = {0};
    w.buf_size = 64;
    assert_int_equal(uv_loop_init(&w.loop), 0);
    pair p;
    sl_tls_ctx *a, *c;
    handshaken(&p, &w, &a, &c);
    assert_true(sl_stream_attach(&p.srv, &w, owner_cb));
    memset(&owner, 0, sizeof(owner));
    uint8_t rec[4000];
    fill(rec, sizeof(rec), 3);
    sl_pb_bytes(&p.cli.out, rec, sizeof(rec));
    assert_int_equal(sl_stream_flush(&p.cli, NULL), SL_IO_OK);

    owner.stop_reading = true;
    sl_stream_set_poll(&p.srv, UV_READABLE);
    run_until(&w.loop, 1);
    for (int i = 0; i < 5; i++) uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(owner.got, 64); /* one read, then it stopped */
    assert_int_equal(p.srv.want, 0);

    owner.stop_reading = false;
    sl_stream_set_poll(&p.srv, UV_READABLE);
    run_until(&w.loop, sizeof(rec));
    assert_int_equal(owner.got, sizeof(rec));
    for (int i = 0; i < 3; i++) uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(p.srv.want, UV_READABLE); /* no writable left behind */
    for (int i = 0; i < owner.nevents; i++) assert_int_equal(owner.events[i] & UV_WRITABLE, 0);

    /* a read that has to write first is retried when the socket turns writable */
    sl_tls_conn *t = p.srv.tr_state;
    t->rd_wait = UV_WRITABLE;
    sl_stream_set_poll(&p.srv, UV_READABLE);
    assert_int_equal(p.srv.want, UV_READABLE | UV_WRITABLE);
    owner.nevents = 0;
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_true(owner.nevents >= 1);
    assert_int_equal(owner.events[0], UV_READABLE); /* the owner is told readable, not writable */
    assert_int_equal(t->rd_wait, 0);                /* its read (nothing to read) cleared the wait */
    assert_int_equal(p.srv.want, UV_READABLE);

    sl_stream_close(&p.srv, NULL);
    uv_run(&w.loop, UV_RUN_NOWAIT); /* libuv lets go of the handle; the stream is released */
    sl_stream_close(&p.cli, NULL);
    assert_int_equal(uv_loop_close(&w.loop), 0);
    sl_tls_ctx_unref(a);
    sl_tls_ctx_unref(c);
    for (uint32_t i = 0; i < w.buf_free_n; i++) free(w.buf_free[i]);
    free(w.buf_free);
}

static int hs_done[2], hs_calls[2];
static const sl_stream *hs_srv;

static void hs_cb(sl_stream *s, int events)
{
    hs_done[s == hs_srv] |= events;
    hs_calls[s == hs_srv]++;
}

/* On a real loop: one sl_stream_handshake call each, then the loop drives both handshakes and
 * tells each owner once, with readable and writable, when its side is done. */
static void test_the_loop_drives_the_handshake(void **state)
{
    (void)state;
    sl_worker w = {0};
    w.buf_size = 4096;
    assert_int_equal(uv_loop_init(&w.loop), 0);
    sl_tls_ctx *a = accept_ctx("require", "server"), *c = connect_ctx("verify-full", NULL);
    pair p;
    open_pair(&p, &w);
    hs_srv = &p.srv;
    assert_true(sl_stream_attach(&p.srv, &w, hs_cb));
    assert_true(sl_stream_attach(&p.cli, &w, hs_cb));
    sl_stream_set_poll(&p.srv, UV_READABLE);
    sl_stream_set_poll(&p.cli, UV_READABLE | UV_WRITABLE);
    start(&p, a, c, "localhost");
    hs_done[0] = hs_done[1] = hs_calls[0] = hs_calls[1] = 0;
    assert_int_equal(sl_stream_handshake(&p.srv), SL_IO_AGAIN);
    assert_int_equal(p.srv.want, UV_READABLE); /* waits for the ClientHello, nothing else */
    assert_int_equal(sl_stream_handshake(&p.cli), SL_IO_AGAIN);
    assert_int_equal(p.cli.want, UV_READABLE); /* its own writable would only spin now */
    for (int i = 0; i < 50 && !(hs_done[0] && hs_done[1]); i++) uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(hs_done[0], UV_READABLE | UV_WRITABLE);
    assert_int_equal(hs_done[1], UV_READABLE | UV_WRITABLE);
    for (int i = 0; i < 5; i++) uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(hs_calls[1], 1); /* once; the server's owner polls readable, nothing came */
    assert_int_equal(sl_stream_handshake(&p.srv), SL_IO_OK);
    assert_int_equal(sl_stream_handshake(&p.cli), SL_IO_OK);
    assert_int_equal(p.srv.want, UV_READABLE); /* back to what each owner asked for */
    assert_int_equal(p.cli.want, UV_READABLE | UV_WRITABLE);
    sl_stream_close(&p.srv, NULL);
    sl_stream_close(&p.cli, NULL);
    uv_run(&w.loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&w.loop), 0);
    sl_tls_ctx_unref(a);
    sl_tls_ctx_unref(c);
    for (uint32_t i = 0; i < w.buf_free_n; i++) free(w.buf_free[i]);
    free(w.buf_free);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_checks_fail_closed),
        cmocka_unit_test(test_install_and_acquire),
        cmocka_unit_test(test_what_modes_mean),
        cmocka_unit_test(test_handshake_alpn_and_end_point),
        cmocka_unit_test(test_end_point_follows_a_stronger_signature_hash),
        cmocka_unit_test(test_server_certificate_checks),
        cmocka_unit_test(test_client_certificates),
        cmocka_unit_test(test_protocol_settings_apply),
        cmocka_unit_test(test_ssl_request_both_ways),
        cmocka_unit_test(test_direct_tls),
        cmocka_unit_test(test_data_both_ways_through_partial_writes),
        cmocka_unit_test(test_a_stuck_record_must_come_again),
        cmocka_unit_test(test_pending_after_a_large_record),
        cmocka_unit_test(test_records_read_ahead_come_in_one_read),
        cmocka_unit_test(test_decrypted_bytes_reach_an_owner_that_reads_again),
        cmocka_unit_test(test_the_loop_drives_the_handshake),
    };
    return cmocka_run_group_tests(tests, setup_certs, remove_certs);
}
