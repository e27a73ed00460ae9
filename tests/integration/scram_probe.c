/* scram_probe.c - a test tool (not part of pgsluice) that runs src/auth's SCRAM code over a real TLS
 * connection, so test_scram_binding.py can check channel binding against PostgreSQL and libpq:
 *
 *   scram_probe client PORT USER (--password PW | --keys CLIENTKEY_B64 SERVERKEY_B64) --cb MODE
 *               [--db DB] [--no-tls] [--nonce N] [--trace]
 *       logs in to PostgreSQL on 127.0.0.1:PORT (database DB, default USER) with the client side; MODE: bound
 *       (SCRAM-SHA-256-PLUS with the server certificate's hash), bound-wrong (the same hash with one bit
 *       flipped: a certificate swapped in the middle), client-only ("y,,"), none ("n,,").
 *   scram_probe server PORTFILE CERT KEY (--password PW | --secret SCRAM_SECRET) [--offer plus|plain] [--cb-wrong] [--nonce N] [--trace]
 *       accepts one libpq connection on 127.0.0.1 (the port goes to PORTFILE) and verifies it with the
 *       server side; --offer plus (default over TLS) advertises SCRAM-SHA-256-PLUS, --offer none does
 *       not and knows no certificate hash (a server that cannot bind), --offer plain advertises
 *       SCRAM-SHA-256 only while still knowing the hash (as if someone stripped PLUS from the list: a
 *       downgrade); --cb-wrong binds to a wrong hash.
 *
 * Prints "offered: <mechanisms>" (client), the SCRAM messages with --trace ("C1:", "S1:", "C2:", "S2:"),
 * then "OK ..." (exit 0), "ERROR <sqlstate> <message>" (the peer's or our ErrorResponse, exit 1) or
 * "FAIL <reason>" (anything else, exit 2). Blocking sockets, one connection: a probe, not a server. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "auth/base64.h"
#include "auth/scram.h"

typedef struct conn {
   int fd;
   SSL *ssl;
} conn;

typedef struct msg {
   char type;
   uint8_t body[8192];
   uint32_t len;
} msg;

static bool trace;

static void die(const char *fmt, ...)
{
   va_list ap;

   va_start(ap, fmt);
   printf("FAIL ");
   vprintf(fmt, ap);
   printf("\n");
   va_end(ap);
   exit(2);
}

static void io_read(conn *c, void *buf, size_t n)
{
   uint8_t *p = buf;

   while (n > 0) {
      ssize_t r = c->ssl ? SSL_read(c->ssl, p, (int)n) : read(c->fd, p, n);

      if (r <= 0)
         die("connection closed by the peer");
      p += r;
      n -= (size_t)r;
   }
}

static void io_write(conn *c, const void *buf, size_t n)
{
   const uint8_t *p = buf;

   while (n > 0) {
      ssize_t r = c->ssl ? SSL_write(c->ssl, p, (int)n) : write(c->fd, p, n);

      if (r <= 0)
         die("write failed");
      p += r;
      n -= (size_t)r;
   }
}

static uint32_t get32(const uint8_t *p)
{
   return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
   p[0] = (uint8_t)(v >> 24);
   p[1] = (uint8_t)(v >> 16);
   p[2] = (uint8_t)(v >> 8);
   p[3] = (uint8_t)v;
}

static void read_msg(conn *c, msg *m)
{
   uint8_t hdr[5];

   io_read(c, hdr, 5);
   m->type = (char)hdr[0];
   m->len = get32(hdr + 1);
   if (m->len < 4 || m->len - 4 >= sizeof(m->body))
      die("bad message length %u", m->len);
   m->len -= 4;
   io_read(c, m->body, m->len);
   m->body[m->len] = 0;
}

static void send_msg(conn *c, char type, const void *body, size_t len)
{
   uint8_t hdr[5];

   hdr[0] = (uint8_t)type;
   put32(hdr + 1, (uint32_t)len + 4);
   io_write(c, hdr, 5);
   io_write(c, body, len);
}

/* ErrorResponse fields S, C, M: print "ERROR <C> <M>" and exit 1. */
static void print_error_and_exit(const msg *m)
{
   const char *code = "?", *text = "?";

   for (uint32_t i = 0; i < m->len && m->body[i];) {
      const char *f = (const char *)m->body + i + 1;

      if (m->body[i] == 'C')
         code = f;
      else if (m->body[i] == 'M')
         text = f;
      i += 1 + (uint32_t)strlen(f) + 1;
   }
   printf("ERROR %s %s\n", code, text);
   exit(1);
}

static void send_error_and_exit(conn *c, const char *sqlstate, const char *text)
{
   uint8_t body[1024];
   int n = snprintf((char *)body, sizeof(body), "SFATAL%cVFATAL%cC%s%cM%s%c", 0, 0, sqlstate, 0, text, 0);

   if (n < 0 || (size_t)n + 1 > sizeof(body))
      die("error text too long");
   body[n] = 0;
   send_msg(c, 'E', body, (size_t)n + 1);
   printf("ERROR %s %s\n", sqlstate, text);
   exit(1);
}

/* tls-server-end-point (RFC 5929 section 4.1): the certificate's hash with its signature's hash
 * algorithm, SHA-256 for MD5 and SHA-1. The same rule as sl_stream_tls_server_end_point. */
static size_t cert_hash(X509 *cert, uint8_t out[EVP_MAX_MD_SIZE])
{
   int algo = NID_undef;
   unsigned int n = 0;
   const EVP_MD *md;

   if (cert == NULL || !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &algo, NULL))
      die("no certificate or unknown signature algorithm");
   md = (algo == NID_md5 || algo == NID_sha1) ? EVP_sha256() : EVP_get_digestbynid(algo);
   if (md == NULL || X509_digest(cert, md, out, &n) != 1)
      die("cannot hash the certificate");
   return n;
}

static void show(const char *tag, const char *s, size_t n)
{
   if (trace)
      printf("%s: %.*s\n", tag, (int)n, s);
}

static int tcp_connect(int port)
{
   struct sockaddr_in a;
   int fd = socket(AF_INET, SOCK_STREAM, 0);

   memset(&a, 0, sizeof(a));
   a.sin_family = AF_INET;
   a.sin_port = htons((uint16_t)port);
   a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
   if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
      die("cannot connect to 127.0.0.1:%d", port);
   return fd;
}

/* ---- client: log in to PostgreSQL ---- */

static void decode_key(const char *b64, uint8_t out[SL_SCRAM_KEY_LEN])
{
   size_t n = 0;

   if (!sl_base64_decode(b64, strlen(b64), out, SL_SCRAM_KEY_LEN, &n) || n != SL_SCRAM_KEY_LEN)
      die("a key must be 32 bytes in base64");
}

static int run_client(int argc, char **argv)
{
   const char *user, *db, *password = NULL, *ck_b64 = NULL, *sk_b64 = NULL, *mode = NULL, *nonce = NULL;
   bool tls = true, offers_plus = false, offers_plain = false;
   int port;
   conn c = {-1, NULL};
   SSL_CTX *ctx = NULL;
   uint8_t cb[EVP_MAX_MD_SIZE], buf[1024], ck[SL_SCRAM_KEY_LEN], sk[SL_SCRAM_KEY_LEN];
   size_t cb_len = 0, n;
   sl_scram_client sc;
   char first[512], out[1024];
   const char *errmsg = NULL, *mech;
   msg m;

   if (argc < 4)
      die("usage: scram_probe client PORT USER ...");
   port = atoi(argv[2]);
   user = db = argv[3];
   for (int i = 4; i < argc; i++) {
      if (!strcmp(argv[i], "--db") && i + 1 < argc)
         db = argv[++i];
      else if (!strcmp(argv[i], "--password") && i + 1 < argc)
         password = argv[++i];
      else if (!strcmp(argv[i], "--keys") && i + 2 < argc)
         ck_b64 = argv[++i], sk_b64 = argv[++i];
      else if (!strcmp(argv[i], "--cb") && i + 1 < argc)
         mode = argv[++i];
      else if (!strcmp(argv[i], "--nonce") && i + 1 < argc)
         nonce = argv[++i];
      else if (!strcmp(argv[i], "--no-tls"))
         tls = false;
      else if (!strcmp(argv[i], "--trace"))
         trace = true;
      else
         die("unknown option %s", argv[i]);
   }
   if (mode == NULL || (password == NULL) == (ck_b64 == NULL))
      die("need --cb and one of --password / --keys");

   c.fd = tcp_connect(port);
   if (tls) {
      put32(buf, 8);
      put32(buf + 4, 80877103); /* SSLRequest */
      io_write(&c, buf, 8);
      io_read(&c, buf, 1);
      if (buf[0] != 'S')
         die("the server refused TLS");
      ctx = SSL_CTX_new(TLS_client_method());
      c.ssl = SSL_new(ctx);
      SSL_set_fd(c.ssl, c.fd);
      if (SSL_connect(c.ssl) != 1)
         die("TLS handshake failed");
      cb_len = cert_hash(SSL_get0_peer_certificate(c.ssl), cb);
   }
   n = 8;
   n += (size_t)sprintf((char *)buf + n, "user") + 1;
   n += (size_t)sprintf((char *)buf + n, "%s", user) + 1;
   n += (size_t)sprintf((char *)buf + n, "database") + 1;
   n += (size_t)sprintf((char *)buf + n, "%s", db) + 1;
   buf[n++] = 0;
   put32(buf, (uint32_t)n);
   put32(buf + 4, 196608); /* protocol 3.0 */
   io_write(&c, buf, n);

   read_msg(&c, &m);
   if (m.type == 'E')
      print_error_and_exit(&m);
   if (m.type != 'R' || m.len < 4 || get32(m.body) != 10)
      die("expected AuthenticationSASL, got '%c'", m.type);
   printf("offered:");
   for (uint32_t i = 4; i < m.len && m.body[i]; i += (uint32_t)strlen((char *)m.body + i) + 1) {
      printf(" %s", (char *)m.body + i);
      offers_plus |= !strcmp((char *)m.body + i, SL_SCRAM_MECH_PLUS);
      offers_plain |= !strcmp((char *)m.body + i, SL_SCRAM_MECH);
   }
   printf("\n");
   if (!offers_plain)
      die("the server does not offer SCRAM-SHA-256");

   if (password != NULL) {
      sl_scram_client_init(&sc, password, NULL, NULL);
   } else {
      decode_key(ck_b64, ck);
      decode_key(sk_b64, sk);
      sl_scram_client_init(&sc, NULL, ck, sk);
   }
   if (nonce != NULL && !sl_scram_client_set_nonce(&sc, nonce, NULL))
      die("bad nonce");
   if (!strcmp(mode, "bound") || !strcmp(mode, "bound-wrong")) {
      if (!offers_plus || cb_len == 0)
         die("channel binding required, but the server did not offer SCRAM-SHA-256-PLUS");
      if (!strcmp(mode, "bound-wrong"))
         cb[cb_len - 1] ^= 1;
      if (!sl_scram_client_set_channel_binding(&sc, SL_SCRAM_CB_BOUND, cb, cb_len))
         die("set_channel_binding refused the hash");
   } else if (!strcmp(mode, "client-only")) {
      if (!sl_scram_client_set_channel_binding(&sc, SL_SCRAM_CB_CLIENT_ONLY, NULL, 0))
         die("set_channel_binding refused");
   } else if (strcmp(mode, "none") != 0) {
      die("unknown --cb mode %s", mode);
   }
   if (!sl_scram_client_first(&sc, first, sizeof(first)))
      die("client_first failed");
   show("C1", first, strlen(first));
   mech = sl_scram_client_mechanism(&sc);
   n = (size_t)sprintf((char *)buf, "%s", mech) + 1;
   put32(buf + n, (uint32_t)strlen(first));
   memcpy(buf + n + 4, first, strlen(first));
   send_msg(&c, 'p', buf, n + 4 + strlen(first));

   read_msg(&c, &m);
   if (m.type == 'E')
      print_error_and_exit(&m);
   if (m.type != 'R' || m.len < 4 || get32(m.body) != 11)
      die("expected AuthenticationSASLContinue, got '%c'", m.type);
   show("S1", (char *)m.body + 4, m.len - 4);
   if (!sl_scram_client_final(&sc, (char *)m.body + 4, m.len - 4, out, sizeof(out), &errmsg))
      die("client_final: %s", errmsg);
   show("C2", out, strlen(out));
   send_msg(&c, 'p', out, strlen(out));

   read_msg(&c, &m);
   if (m.type == 'E')
      print_error_and_exit(&m);
   if (m.type != 'R' || m.len < 4 || get32(m.body) != 12)
      die("expected AuthenticationSASLFinal, got '%c'", m.type);
   show("S2", (char *)m.body + 4, m.len - 4);
   if (!sl_scram_client_verify(&sc, (char *)m.body + 4, m.len - 4, &errmsg))
      die("client_verify: %s", errmsg);
   read_msg(&c, &m);
   if (m.type == 'E')
      print_error_and_exit(&m);
   if (m.type != 'R' || m.len < 4 || get32(m.body) != 0)
      die("expected AuthenticationOk, got '%c'", m.type);
   do { /* ParameterStatus, BackendKeyData, ... until ReadyForQuery */
      read_msg(&c, &m);
      if (m.type == 'E')
         print_error_and_exit(&m);
   } while (m.type != 'Z');
   send_msg(&c, 'X', "", 0);
   printf("OK mechanism=%s cb_bytes=%zu\n", mech, sc.cb_len);
   sl_scram_client_clear(&sc);
   if (c.ssl) {
      SSL_shutdown(c.ssl);
      SSL_free(c.ssl);
      SSL_CTX_free(ctx);
   }
   close(c.fd);
   return 0;
}

/* ---- server: verify one libpq client ---- */

static void param(conn *c, const char *name, const char *value)
{
   uint8_t body[256];
   size_t n = (size_t)sprintf((char *)body, "%s", name) + 1;

   n += (size_t)sprintf((char *)body + n, "%s", value) + 1;
   send_msg(c, 'S', body, n);
}

static void auth_msg(conn *c, uint32_t code, const void *data, size_t len)
{
   uint8_t body[2048];

   put32(body, code);
   memcpy(body + 4, data, len);
   send_msg(c, 'R', body, len + 4);
}

static int listen_once(const char *portfile)
{
   struct sockaddr_in a;
   socklen_t alen = sizeof(a);
   int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0), fd;
   char tmp[4096];
   FILE *f;

   memset(&a, 0, sizeof(a));
   a.sin_family = AF_INET;
   a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
   setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
   if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 1) != 0 ||
       getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
      die("cannot listen");
   snprintf(tmp, sizeof(tmp), "%s.tmp", portfile);
   f = fopen(tmp, "w");
   if (f == NULL || fprintf(f, "%d\n", ntohs(a.sin_port)) < 0 || fclose(f) != 0 || rename(tmp, portfile) != 0)
      die("cannot write %s", portfile);
   fd = accept(lfd, NULL, NULL);
   if (fd < 0)
      die("accept failed");
   close(lfd);
   return fd;
}

static int run_server(int argc, char **argv)
{
   const char *portfile, *certfile, *keyfile, *password = NULL, *secret = NULL, *offer = "plus", *nonce = NULL;
   bool cb_wrong = false;
   conn c = {-1, NULL};
   SSL_CTX *ctx;
   uint8_t cb[EVP_MAX_MD_SIZE], buf[8];
   size_t cb_len = 0, list_len;
   uint32_t len;
   sl_scram_secret sec;
   sl_scram_server *st = calloc(1, sizeof(*st));
   char out[1024], mech[64];
   const char *errmsg = NULL, *list;
   msg m;

   if (argc < 5)
      die("usage: scram_probe server PORTFILE CERT KEY ...");
   portfile = argv[2];
   certfile = argv[3];
   keyfile = argv[4];
   for (int i = 5; i < argc; i++) {
      if (!strcmp(argv[i], "--password") && i + 1 < argc)
         password = argv[++i];
      else if (!strcmp(argv[i], "--secret") && i + 1 < argc)
         secret = argv[++i];
      else if (!strcmp(argv[i], "--offer") && i + 1 < argc)
         offer = argv[++i];
      else if (!strcmp(argv[i], "--nonce") && i + 1 < argc)
         nonce = argv[++i];
      else if (!strcmp(argv[i], "--cb-wrong"))
         cb_wrong = true;
      else if (!strcmp(argv[i], "--trace"))
         trace = true;
      else
         die("unknown option %s", argv[i]);
   }
   if (st == NULL || (secret != NULL ? !sl_scram_parse_secret(secret, &sec)
                                     : password == NULL || !sl_scram_secret_from_password(password, NULL, 0, 4096, &sec)))
      die("need --password or a valid --secret");
   ctx = SSL_CTX_new(TLS_server_method());
   if (SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1 ||
       SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1)
      die("cannot load %s / %s", certfile, keyfile);
   setvbuf(stdout, NULL, _IOLBF, 0);

   c.fd = listen_once(portfile);
   for (;;) { /* SSLRequest / GSSENCRequest, then the startup packet */
      io_read(&c, buf, 4);
      len = get32(buf);
      if (len < 8 || len > sizeof(((msg *)0)->body))
         die("bad startup packet length");
      io_read(&c, m.body, len - 4);
      if (get32(m.body) == 80877103 && c.ssl == NULL) {
         io_write(&c, "S", 1);
         c.ssl = SSL_new(ctx);
         SSL_set_fd(c.ssl, c.fd);
         if (SSL_accept(c.ssl) != 1)
            die("TLS handshake failed");
         cb_len = cert_hash(SSL_get_certificate(c.ssl), cb);
      } else if (get32(m.body) == 80877104) {
         io_write(&c, "N", 1);
      } else if (get32(m.body) == 196608) {
         break;
      } else {
         die("unexpected startup code %u", get32(m.body));
      }
   }
   if (!strcmp(offer, "none"))
      cb_len = 0;
   if (cb_len > 0) {
      if (cb_wrong)
         cb[0] ^= 1;
      if (!sl_scram_server_set_channel_binding(st, cb, cb_len))
         die("set_channel_binding refused the hash");
   }
   list = sl_scram_server_mechanisms(cb_len > 0 && !strcmp(offer, "plus"), &list_len);
   auth_msg(&c, 10, list, list_len);

   read_msg(&c, &m); /* SASLInitialResponse: mechanism, length, client-first */
   if (m.type != 'p' || strlen((char *)m.body) + 5 > m.len || strlen((char *)m.body) >= sizeof(mech))
      die("expected SASLInitialResponse");
   strcpy(mech, (char *)m.body);
   len = get32(m.body + strlen(mech) + 1);
   if (len > m.len - strlen(mech) - 5)
      die("bad SASLInitialResponse length");
   show("C1", (char *)m.body + strlen(mech) + 5, len);
   if (nonce != NULL && !sl_scram_server_set_nonce(st, nonce))
      die("bad nonce");
   if (!sl_scram_server_select_mechanism(st, mech, &errmsg))
      send_error_and_exit(&c, st->sqlstate, errmsg);
   if (!sl_scram_server_first(st, &sec, "probe", (char *)m.body + strlen(mech) + 5, len, out, sizeof(out), &errmsg))
      send_error_and_exit(&c, st->sqlstate, errmsg);
   printf("client chose %s, gs2 flag %c\n", mech, st->cbind_flag);
   show("S1", out, strlen(out));
   auth_msg(&c, 11, out, strlen(out));

   read_msg(&c, &m); /* SASLResponse: client-final */
   if (m.type != 'p')
      die("expected SASLResponse");
   show("C2", (char *)m.body, m.len);
   if (!sl_scram_server_final(st, (char *)m.body, m.len, out, sizeof(out), &errmsg))
      send_error_and_exit(&c, st->sqlstate, errmsg);
   show("S2", out, strlen(out));
   auth_msg(&c, 12, out, strlen(out));
   auth_msg(&c, 0, "", 0);
   param(&c, "server_version", "15.0");
   param(&c, "server_encoding", "UTF8");
   param(&c, "client_encoding", "UTF8");
   param(&c, "standard_conforming_strings", "on");
   param(&c, "integer_datetimes", "on");
   param(&c, "DateStyle", "ISO, MDY");
   memset(out, 0, 8);
   send_msg(&c, 'K', out, 8);
   send_msg(&c, 'Z', "I", 1);
   printf("OK mechanism=%s flag=%c cb_bytes=%zu\n", mech, st->cbind_flag, st->cbind_flag == 'p' ? st->cb_len : 0);
   for (;;) { /* until Terminate or EOF: a query gets an error */
      uint8_t hdr[5];
      ssize_t r = c.ssl ? SSL_read(c.ssl, hdr, 1) : read(c.fd, hdr, 1);

      if (r <= 0 || hdr[0] == 'X')
         break;
      io_read(&c, hdr + 1, 4);
      len = get32(hdr + 1);
      if (len < 4 || len - 4 > sizeof(m.body))
         break;
      io_read(&c, m.body, len - 4);
      if (hdr[0] == 'Q') {
         static const char err[] = "SERROR\0C0A000\0Mscram_probe runs no queries\0";

         send_msg(&c, 'E', err, sizeof(err));
         send_msg(&c, 'Z', "I", 1);
      }
   }
   sl_scram_server_clear(st);
   free(st);
   if (c.ssl)
      SSL_free(c.ssl);
   SSL_CTX_free(ctx);
   close(c.fd);
   return 0;
}

int main(int argc, char **argv)
{
   setvbuf(stdout, NULL, _IOLBF, 0);
   if (argc >= 2 && !strcmp(argv[1], "client"))
      return run_client(argc, argv);
   if (argc >= 2 && !strcmp(argv[1], "server"))
      return run_server(argc, argv);
   die("usage: scram_probe client|server ...");
   return 2;
}
