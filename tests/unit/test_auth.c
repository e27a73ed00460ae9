/* test_auth.c - unit tests for src/auth: base64, md5 passwords, SASLprep and SCRAM-SHA-256 on both sides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/base64.h"
#include "auth/md5.h"
#include "auth/random.h"
#include "auth/saslprep.h"
#include "auth/scram.h"

/* RFC 7677 section 3 example. */
#define RFC_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_FIRST "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL \
   "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* Secrets computed independently with python3 hashlib (pbkdf2_hmac / hmac / sha256). */
#define RFC_SECRET \
   "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
   "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC_CLIENT_KEY_B64 "pg/JI9Z+hkSpLRa5btpe9GVrDHJcSEN0viVTVXaZbos="
#define TROUB_SECRET \
   "SCRAM-SHA-256$10000:AAECAwQFBgcICQoLDA0ODw==$ZOHjqSd+7ZjVdNhqZgnyxj8eW/DjR1VdoA2OvajzbIE=:" \
   "P2/L5t0o4k1mrjt5+Jpi2truk1vQOKIYvNtsT2xwh+U="
/* password "pass word\u00e9", salt "saltsaltsaltsalt", 4096 iterations */
#define PREP_SECRET \
   "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$RwtGb4V+cBd+6foSD9dnn28ORoXhwOgR3zwGFFlL3vw=:" \
   "itcJy5Qq5ShcLMZkcilUOsOTX2Zmh9FPkV5BbnrC7ZA="

static sl_scram_secret rfc_secret(void)
{
   sl_scram_secret sec;

   assert_true(sl_scram_parse_secret(RFC_SECRET, &sec));
   return sec;
}

static void test_base64(void **state)
{
   char enc[64];
   uint8_t dec[64];
   size_t n;

   (void)state;
   assert_true(sl_base64_encode("", 0, enc, sizeof(enc)));
   assert_string_equal(enc, "");
   assert_true(sl_base64_encode("f", 1, enc, sizeof(enc)));
   assert_string_equal(enc, "Zg==");
   assert_true(sl_base64_encode("fo", 2, enc, sizeof(enc)));
   assert_string_equal(enc, "Zm8=");
   assert_true(sl_base64_encode("foobar", 6, enc, sizeof(enc)));
   assert_string_equal(enc, "Zm9vYmFy");
   assert_false(sl_base64_encode("foobar", 6, enc, 8)); /* no room for the NUL */
   assert_true(sl_base64_decode("Zm9vYg==", 8, dec, sizeof(dec), &n));
   assert_int_equal(n, 4);
   assert_memory_equal(dec, "foob", 4);
   assert_true(sl_base64_decode("", 0, dec, sizeof(dec), &n));
   assert_int_equal(n, 0);
   assert_false(sl_base64_decode("Zm9vYg=", 7, dec, sizeof(dec), &n));  /* length */
   assert_false(sl_base64_decode("Zm9v Yg=", 8, dec, sizeof(dec), &n)); /* space */
   assert_false(sl_base64_decode("Zg==Zg==", 8, dec, sizeof(dec), &n)); /* padding in the middle */
   assert_false(sl_base64_decode("Z===", 4, dec, sizeof(dec), &n));
   assert_false(sl_base64_decode("Zg=a", 4, dec, sizeof(dec), &n));
   assert_false(sl_base64_decode("Zm9vYmFy", 8, dec, 5, &n)); /* does not fit */
}

static void test_random(void **state)
{
   uint8_t a[32] = {0}, b[32] = {0};

   (void)state;
   assert_true(sl_random_bytes(a, sizeof(a)));
   assert_true(sl_random_bytes(b, sizeof(b)));
   assert_memory_not_equal(a, b, sizeof(a));
}

static int cmp_u64(const void *x, const void *y)
{
   uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

   return a < b ? -1 : a > b;
}

/* Small requests come from a per-thread buffer: across several refills no draw repeats. */
static void test_random_small_draws(void **state)
{
   enum { N = 3000 };
   static uint64_t v[N];
   uint8_t salt[4] = {0}, salt2[4] = {0};

   (void)state;
   for (int i = 0; i < N; i++)
      assert_true(sl_random_bytes(&v[i], sizeof(v[i])));
   qsort(v, N, sizeof(v[0]), cmp_u64);
   for (int i = 1; i < N; i++)
      assert_true(v[i] != v[i - 1]);
   assert_true(sl_random_bytes(salt, 4));
   assert_true(sl_random_bytes(salt2, 4));
   assert_memory_not_equal(salt, salt2, 4);
}

/* A forked child must not repeat the bytes its parent hands out next. */
static void test_random_fork(void **state)
{
   uint64_t mine = 0, child = 0;
   int fds[2];

   (void)state;
   assert_true(sl_random_bytes(&mine, sizeof(mine))); /* the buffer is filled */
   assert_int_equal(pipe(fds), 0);
   pid_t pid = fork();
   assert_true(pid >= 0);
   if (pid == 0) {
      uint64_t x = 0;
      bool ok = sl_random_bytes(&x, sizeof(x));
      ssize_t w = write(fds[1], &x, sizeof(x));
      _exit(ok && w == (ssize_t)sizeof(x) ? 0 : 1);
   }
   close(fds[1]);
   assert_true(sl_random_bytes(&mine, sizeof(mine)));
   assert_int_equal(read(fds[0], &child, sizeof(child)), (ssize_t)sizeof(child));
   close(fds[0]);
   int st = 0;
   assert_int_equal(waitpid(pid, &st, 0), pid);
   assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
   assert_true(mine != child);
}

static void test_md5(void **state)
{
   const uint8_t salt[4] = {1, 2, 3, 4}, salt2[4] = {1, 2, 3, 5};
   char hash[36], ans[36];

   (void)state;
   /* python3: "md5" + hashlib.md5(b"secret" + b"user").hexdigest() */
   sl_md5_user_hash("secret", "user", hash);
   assert_string_equal(hash, "md520eb1b22a92b5c573dc1eb4331fc49ee");
   assert_true(sl_md5_is_hash(hash));
   assert_false(sl_md5_is_hash("md520EB1B22A92B5C573DC1EB4331FC49EE"));
   assert_false(sl_md5_is_hash("md520eb1b22a92b5c573dc1eb4331fc49e"));
   assert_false(sl_md5_is_hash("md520eb1b22a92b5c573dc1eb4331fc49eee"));
   assert_false(sl_md5_is_hash("secret"));
   /* python3: hashlib.md5(b"20eb...49ee" + bytes([1,2,3,4])).hexdigest() */
   sl_md5_salted(hash, salt, ans);
   assert_string_equal(ans, "md5fccef98e4f1cf6cbe96b743fad4e8bd0");
   assert_true(sl_md5_verify("secret", "user", salt, ans));
   assert_true(sl_md5_verify(hash, "user", salt, ans));
   assert_false(sl_md5_verify("secret", "user", salt2, ans));
   assert_false(sl_md5_verify("Secret", "user", salt, ans));
   assert_false(sl_md5_verify("secret", "user2", salt, ans));
   assert_false(sl_md5_verify(hash, "user", salt, "md5fccef98e4f1cf6cbe96b743fad4e8bd"));
   assert_false(sl_md5_verify(hash, "user", salt, "md5fccef98e4f1cf6cbe96b743fad4e8bd00"));
   assert_false(sl_md5_verify(hash, "user", salt, ""));
   assert_false(sl_md5_verify(RFC_SECRET, "user", salt, ans));
   sl_md5_salted("not a hash", salt, ans);
   assert_string_equal(ans, "");
}

static void test_saslprep(void **state)
{
   char out[64];
   sl_scram_secret a, b;

   (void)state;
   assert_true(sl_saslprep("pencil", out, sizeof(out)));
   assert_string_equal(out, "pencil");
   assert_true(sl_saslprep("a\tb", out, sizeof(out))); /* ASCII: unchanged, like PostgreSQL */
   assert_string_equal(out, "a\tb");
   assert_true(sl_saslprep("pass\xc2\xa0w\xc2\xadord\xc3\xa9", out, sizeof(out)));
   assert_string_equal(out, "pass word\xc3\xa9");
   assert_true(sl_saslprep("\xe2\x80\x8b" "a", out, sizeof(out))); /* U+200B is a space (C.1.2 first) */
   assert_string_equal(out, " a");
   assert_true(sl_saslprep("bad\xff" "utf8", out, sizeof(out))); /* invalid UTF-8: as-is */
   assert_string_equal(out, "bad\xff" "utf8");
   assert_true(sl_saslprep("\xe2\x85\xa8", out, sizeof(out))); /* U+2168 needs NFKC we lack: as-is */
   assert_string_equal(out, "\xe2\x85\xa8");
   assert_true(sl_saslprep("\xc2\xad", out, sizeof(out))); /* empty after mapping: as-is */
   assert_string_equal(out, "\xc2\xad");
   assert_false(sl_saslprep("pencil", out, 6));
   /* the prepared form gives PostgreSQL's secret */
   assert_true(sl_scram_parse_secret(PREP_SECRET, &a));
   assert_true(sl_scram_secret_from_password("pass\xc2\xa0w\xc2\xadord\xc3\xa9", a.salt, a.salt_len, 4096, &b));
   assert_memory_equal(&a, &b, sizeof(a));
}

static void test_secret_parse(void **state)
{
   static const uint8_t salt16[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
   sl_scram_secret a, b;
   char txt[SL_SCRAM_SECRET_MAX];

   (void)state;
   assert_true(sl_scram_is_secret(RFC_SECRET));
   assert_true(sl_scram_parse_secret(TROUB_SECRET, &a));
   assert_int_equal(a.iterations, 10000);
   assert_int_equal(a.salt_len, 16);
   assert_memory_equal(a.salt, salt16, 16);
   assert_true(sl_scram_secret_from_password("Tr0ub4dor&3", salt16, 16, 10000, &b));
   assert_memory_equal(&a, &b, sizeof(a));
   assert_true(sl_scram_secret_format(&b, txt, sizeof(txt)));
   assert_string_equal(txt, TROUB_SECRET);
   assert_false(sl_scram_secret_format(&b, txt, 40));

   /* RFC 7677 salt and password give the python-computed secret */
   a = rfc_secret();
   assert_true(sl_scram_secret_from_password("pencil", a.salt, a.salt_len, 4096, &b));
   assert_memory_equal(&a, &b, sizeof(a));

   /* random salt */
   assert_true(sl_scram_secret_from_password("pencil", NULL, 0, 4096, &b));
   assert_int_equal(b.salt_len, SL_SCRAM_DEFAULT_SALT_LEN);
   assert_true(sl_scram_secret_format(&b, txt, sizeof(txt)));
   assert_true(sl_scram_parse_secret(txt, &a));
   assert_memory_equal(&a, &b, sizeof(a));
   assert_false(sl_scram_secret_from_password("pencil", salt16, 0, 4096, &b));
   assert_false(sl_scram_secret_from_password("pencil", salt16, 16, 0, &b));

   assert_false(sl_scram_is_secret("md520eb1b22a92b5c573dc1eb4331fc49ee"));
   assert_false(sl_scram_is_secret("SCRAM-SHA-256$0:AAECAwQFBgcICQoLDA0ODw==$ZOHjqSd+7ZjVdNhqZgnyxj8eW/DjR1VdoA2Ov"
                                   "ajzbIE=:P2/L5t0o4k1mrjt5+Jpi2truk1vQOKIYvNtsT2xwh+U="));
   assert_false(sl_scram_is_secret("SCRAM-SHA-256$-1:AAECAwQFBgcICQoLDA0ODw==$ZOHjqSd+7ZjVdNhqZgnyxj8eW/DjR1VdoA2O"
                                   "vajzbIE=:P2/L5t0o4k1mrjt5+Jpi2truk1vQOKIYvNtsT2xwh+U="));
   assert_false(sl_scram_is_secret("SCRAM-SHA-256$99999999999:AAECAwQFBgcICQoLDA0ODw==$ZOHjqSd+7ZjVdNhqZgnyxj8eW/Dj"
                                   "R1VdoA2OvajzbIE=:P2/L5t0o4k1mrjt5+Jpi2truk1vQOKIYvNtsT2xwh+U="));
   assert_false(sl_scram_is_secret("SCRAM-SHA-256$4096:$ZOHjqSd+7ZjVdNhqZgnyxj8eW/DjR1VdoA2OvajzbIE=:P2/L5t0o4k1mrj"
                                   "t5+Jpi2truk1vQOKIYvNtsT2xwh+U="));
   assert_false(sl_scram_is_secret("SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$ZOHjqSd+7ZjVdNhqZgnyxj8eW/DjR1VdoA2"
                                   "OvajzbI=:P2/L5t0o4k1mrjt5+Jpi2truk1vQOKIYvNtsT2xwh+U=")); /* 31-byte key */
   assert_false(sl_scram_is_secret("SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$ZOHjqSd+7ZjVdNhqZgnyxj8eW/DjR1VdoA2"
                                   "OvajzbIE=:P2/L5t0o4k1mrjt5+Jpi2truk1vQOKIYvNtsT2xwh+U=x"));
   assert_false(sl_scram_is_secret("SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$ZOHjqSd+7ZjVdNhqZgnyxj8eW/DjR1VdoA2"
                                   "OvajzbIE="));
   assert_false(sl_scram_is_secret("SCRAM-SHA-1$4096:AAECAwQFBgcICQoLDA0ODw==$ZOHjqSd+7ZjVdNhqZgnyxj8eW/DjR1VdoA2"
                                   "OvajzbIE=:P2/L5t0o4k1mrjt5+Jpi2truk1vQOKIYvNtsT2xwh+U="));
   assert_false(sl_scram_is_secret("SCRAM-SHA-256$4096:AAEC*wQFBgcICQoLDA0ODw==$ZOHjqSd+7ZjVdNhqZgnyxj8eW/DjR1VdoA2"
                                   "OvajzbIE=:P2/L5t0o4k1mrjt5+Jpi2truk1vQOKIYvNtsT2xwh+U="));
}

static void test_rfc7677_server(void **state)
{
   sl_scram_server srv;
   sl_scram_secret sec = rfc_secret();
   uint8_t ck[32];
   size_t n;
   char out[512];
   const char *err = NULL;

   (void)state;
   memset(&srv, 0, sizeof(srv));
   assert_true(sl_scram_server_set_nonce(&srv, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"));
   assert_true(sl_scram_server_first(&srv, &sec, "user", RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out,
                                     sizeof(out), &err));
   assert_string_equal(out, RFC_SERVER_FIRST);
   assert_true(sl_scram_server_final(&srv, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof(out), &err));
   assert_string_equal(out, RFC_SERVER_FINAL);
   assert_true(srv.have_client_key);
   assert_true(sl_base64_decode(RFC_CLIENT_KEY_B64, strlen(RFC_CLIENT_KEY_B64), ck, sizeof(ck), &n));
   assert_memory_equal(srv.client_key, ck, 32);
   /* a second final on the same exchange is refused */
   assert_false(sl_scram_server_final(&srv, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof(out), &err));
   sl_scram_server_clear(&srv);
}

static void test_rfc7677_client(void **state)
{
   sl_scram_client cl;
   char out[512];
   const char *err = NULL;

   (void)state;
   sl_scram_client_init(&cl, "pencil", NULL, NULL);
   assert_true(sl_scram_client_set_nonce(&cl, "rOprNGfwEbeRWgbNEkqO", "user"));
   assert_true(sl_scram_client_first(&cl, out, sizeof(out)));
   assert_string_equal(out, RFC_CLIENT_FIRST);
   assert_true(sl_scram_client_final(&cl, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, sizeof(out), &err));
   assert_string_equal(out, RFC_CLIENT_FINAL);
   assert_true(sl_scram_client_verify(&cl, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err));
   sl_scram_client_clear(&cl);

   /* a wrong server signature is rejected */
   sl_scram_client_init(&cl, "pencil", NULL, NULL);
   assert_true(sl_scram_client_set_nonce(&cl, "rOprNGfwEbeRWgbNEkqO", "user"));
   assert_true(sl_scram_client_first(&cl, out, sizeof(out)));
   assert_true(sl_scram_client_final(&cl, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, sizeof(out), &err));
   assert_false(sl_scram_client_verify(&cl, "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", 46, &err));
   assert_non_null(err);
}

/* The keys derived elsewhere (server.c: libuv's thread pool) give the same client-final as the inline
 * derivation; a count above SL_SCRAM_MAX_ITERATIONS is refused before any work, saying so. */
static void test_scram_client_keys_derived_elsewhere(void **state)
{
   sl_scram_client cl;
   char out[512];
   const char *err = NULL;
   uint8_t salt[SL_SCRAM_CLIENT_MAX_SALT], ck[SL_SCRAM_KEY_LEN], sk[SL_SCRAM_KEY_LEN];
   size_t salt_len = 0;
   int iter = 0;

   (void)state;
   sl_scram_client_init(&cl, "pencil", NULL, NULL);
   assert_true(sl_scram_client_set_nonce(&cl, "rOprNGfwEbeRWgbNEkqO", "user"));
   assert_false(sl_scram_client_needs_keys(&cl)); /* not before client-first */
   assert_true(sl_scram_client_first(&cl, out, sizeof(out)));
   assert_true(sl_scram_client_needs_keys(&cl));
   assert_true(sl_scram_client_key_params(&cl, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), salt, &salt_len, &iter,
                                          &err));
   assert_int_equal(iter, 4096);
   assert_int_equal(salt_len, 16);
   assert_true(sl_scram_derive_keys("pencil", salt, salt_len, iter, ck, sk));
   assert_true(sl_scram_client_set_keys(&cl, ck, sk));
   assert_false(sl_scram_client_needs_keys(&cl));
   assert_true(sl_scram_client_final(&cl, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, sizeof(out), &err));
   assert_string_equal(out, RFC_CLIENT_FINAL);
   assert_true(sl_scram_client_verify(&cl, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err));
   sl_scram_client_clear(&cl);

   static const char *const too_many[] = {
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2000000000",
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001",
   };
   for (size_t k = 0; k < 2; k++) {
      for (int inline_final = 0; inline_final < 2; inline_final++) {
         sl_scram_client_init(&cl, "pencil", NULL, NULL);
         assert_true(sl_scram_client_set_nonce(&cl, "rOprNGfwEbeRWgbNEkqO", "user"));
         assert_true(sl_scram_client_first(&cl, out, sizeof(out)));
         err = NULL;
         if (inline_final)
            assert_false(sl_scram_client_final(&cl, too_many[k], strlen(too_many[k]), out, sizeof(out), &err));
         else
            assert_false(
               sl_scram_client_key_params(&cl, too_many[k], strlen(too_many[k]), salt, &salt_len, &iter, &err));
         assert_non_null(err);
         assert_non_null(strstr(err, "SCRAM iterations, more than the 10000000 pgsluice computes"));
         assert_false(sl_scram_client_needs_keys(&cl)); /* the exchange is over */
         sl_scram_client_clear(&cl);
      }
   }
}

/* Run a full exchange between cl and a fresh server with sec; returns the server's verdict. */
static bool exchange(sl_scram_client *cl, const sl_scram_secret *sec, sl_scram_server *srv)
{
   char c1[256], s1[512], c2[512], s2[128];
   const char *err = NULL;
   bool ok;

   memset(srv, 0, sizeof(*srv));
   assert_true(sl_scram_client_first(cl, c1, sizeof(c1)));
   assert_int_equal(strncmp(c1, "n,,n=,r=", 8), 0);
   assert_int_equal(strlen(c1), 8 + 32);
   assert_true(sl_scram_server_first(srv, sec, "alice", c1, strlen(c1), s1, sizeof(s1), &err));
   assert_true(sl_scram_client_final(cl, s1, strlen(s1), c2, sizeof(c2), &err));
   ok = sl_scram_server_final(srv, c2, strlen(c2), s2, sizeof(s2), &err);
   if (ok)
      assert_true(sl_scram_client_verify(cl, s2, strlen(s2), &err));
   else
      assert_non_null(err);
   return ok;
}

static void test_round_trip_password(void **state)
{
   sl_scram_secret sec;
   sl_scram_client cl;
   sl_scram_server srv;

   (void)state;
   assert_true(sl_scram_secret_from_password("correct horse", NULL, 0, 4096, &sec));
   sl_scram_client_init(&cl, "correct horse", NULL, NULL);
   assert_true(exchange(&cl, &sec, &srv));
   assert_true(srv.have_client_key);

   sl_scram_client_init(&cl, "wrong horse", NULL, NULL);
   assert_false(exchange(&cl, &sec, &srv));
   assert_false(srv.have_client_key);
}

static void test_pass_through(void **state)
{
   sl_scram_secret sec;
   sl_scram_client cl;
   sl_scram_server front, back;
   uint8_t ck[32];

   (void)state;
   /* the pooler knows only the parsed secret; a client logs in with the password */
   assert_true(sl_scram_parse_secret(TROUB_SECRET, &sec));
   sl_scram_client_init(&cl, "Tr0ub4dor&3", NULL, NULL);
   assert_true(exchange(&cl, &sec, &front));
   assert_true(front.have_client_key);
   memcpy(ck, front.client_key, 32);

   /* the pooler logs in to the real server (same secret) with the recovered ClientKey */
   sl_scram_client_init(&cl, NULL, ck, sec.server_key);
   assert_true(exchange(&cl, &sec, &back));
   assert_memory_equal(back.client_key, ck, 32);

   /* a wrong ClientKey fails */
   ck[0] ^= 1;
   sl_scram_client_init(&cl, NULL, ck, sec.server_key);
   assert_false(exchange(&cl, &sec, &back));
}

static void test_mock(void **state)
{
   sl_scram_server srv, srv2;
   sl_scram_client cl;
   char c1[256], s1[512], s1b[512], c2[512], s2[128];
   const char *err = NULL;
   const char *salt;

   (void)state;
   memset(&srv, 0, sizeof(srv));
   sl_scram_client_init(&cl, "anything", NULL, NULL);
   assert_true(sl_scram_client_first(&cl, c1, sizeof(c1)));
   assert_true(sl_scram_server_first(&srv, NULL, "nobody", c1, strlen(c1), s1, sizeof(s1), &err));
   /* well-formed server-first: the client accepts it */
   assert_int_equal(strncmp(s1, c1 + 6, strlen(c1) - 6), 0); /* "r=<client nonce>" */
   salt = strstr(s1, ",s=");
   assert_non_null(salt);
   assert_non_null(strstr(s1, ",i=4096"));
   assert_true(sl_scram_client_final(&cl, s1, strlen(s1), c2, sizeof(c2), &err));
   assert_false(sl_scram_server_final(&srv, c2, strlen(c2), s2, sizeof(s2), &err));
   assert_string_equal(err, "SCRAM proof verification failed");
   assert_false(srv.have_client_key);

   /* the fake salt is stable per user name and differs between names */
   memset(&srv2, 0, sizeof(srv2));
   assert_true(sl_scram_server_first(&srv2, NULL, "nobody", c1, strlen(c1), s1b, sizeof(s1b), &err));
   assert_string_equal(strstr(s1b, ",s="), salt);
   memset(&srv2, 0, sizeof(srv2));
   assert_true(sl_scram_server_first(&srv2, NULL, "somebody", c1, strlen(c1), s1b, sizeof(s1b), &err));
   assert_string_not_equal(strstr(s1b, ",s="), salt);

   /* user may be NULL */
   memset(&srv2, 0, sizeof(srv2));
   assert_true(sl_scram_server_first(&srv2, NULL, NULL, c1, strlen(c1), s1b, sizeof(s1b), &err));
}

/* Feed a client-first to a fresh server expecting failure. */
static void bad_first(const char *msg)
{
   sl_scram_server srv;
   sl_scram_secret sec = rfc_secret();
   char out[512];
   const char *err = NULL;

   memset(&srv, 0, sizeof(srv));
   assert_false(sl_scram_server_first(&srv, &sec, "user", msg, strlen(msg), out, sizeof(out), &err));
   assert_non_null(err);
}

/* Run the RFC server-first and then feed a client-final expecting failure. */
static void bad_final(const char *msg, const char *why)
{
   sl_scram_server srv;
   sl_scram_secret sec = rfc_secret();
   char out[512];
   const char *err = NULL;

   memset(&srv, 0, sizeof(srv));
   assert_true(sl_scram_server_set_nonce(&srv, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"));
   assert_true(sl_scram_server_first(&srv, &sec, "user", RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out,
                                     sizeof(out), &err));
   assert_false(sl_scram_server_final(&srv, msg, strlen(msg), out, sizeof(out), &err));
   assert_non_null(err);
   if (why)
      assert_non_null(strstr(err, why));
   assert_false(srv.have_client_key);
}

/* Run the RFC client up to client-first and feed a server-first expecting failure. */
static void bad_server_first(const char *msg)
{
   sl_scram_client cl;
   char out[512];
   const char *err = NULL;

   sl_scram_client_init(&cl, "pencil", NULL, NULL);
   assert_true(sl_scram_client_set_nonce(&cl, "rOprNGfwEbeRWgbNEkqO", "user"));
   assert_true(sl_scram_client_first(&cl, out, sizeof(out)));
   assert_false(sl_scram_client_final(&cl, msg, strlen(msg), out, sizeof(out), &err));
   assert_non_null(err);
}

static void test_malformed(void **state)
{
   sl_scram_server srv;
   sl_scram_secret sec = rfc_secret();
   sl_scram_client cl;
   char out[512];
   const char *err = NULL;

   (void)state;
   bad_first("");
   bad_first("n,,n=user");                        /* missing r= */
   bad_first("n,,r=abc");                         /* missing n= */
   bad_first("n,,n=user,r=");                     /* empty nonce */
   bad_first("n,,n=user,r=ab,c");                 /* extension without '=' */
   bad_first("x,,n=user,r=abc");                  /* bad gs2 flag */
   bad_first("n,n=user,r=abc");                   /* short gs2 header */
   bad_first("n,a=admin,n=user,r=abc");           /* authzid */
   bad_first("n,,m=ext,n=user,r=abc");            /* mandatory extension */
   bad_first("n,,n=user,r=abc,");                 /* trailing comma */
   bad_first("n,,n=user,r=a\x7f" "bc");           /* non-printable nonce */
   {
      const char *msg = "p=tls-server-end-point,,n=user,r=abc"; /* binding, but SCRAM-SHA-256 was chosen */

      memset(&srv, 0, sizeof(srv));
      assert_false(sl_scram_server_first(&srv, &sec, "user", msg, strlen(msg), out, sizeof(out), &err));
      assert_string_equal(err, "malformed SCRAM message (the client selected SCRAM-SHA-256 without channel binding, "
                               "but the message includes channel binding data)");
      assert_string_equal(srv.sqlstate, "08P01");
   }
   {
      const char msg[] = "n,,n=user,r=abc\0def"; /* embedded NUL */

      memset(&srv, 0, sizeof(srv));
      assert_false(sl_scram_server_first(&srv, &sec, "user", msg, sizeof(msg) - 1, out, sizeof(out), &err));
   }
   {
      const char *msg = "n,,n=user,r=abc,x=ext"; /* well-formed extensions are ignored */

      memset(&srv, 0, sizeof(srv));
      assert_true(sl_scram_server_first(&srv, &sec, "user", msg, strlen(msg), out, sizeof(out), &err));
   }

   bad_final("", NULL);
   bad_final("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "p=");         /* missing proof */
   bad_final("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
             "c=");                                                                            /* missing c= */
   bad_final("c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "r=");                    /* missing r= */
   bad_final("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,"
             "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "nonce");                        /* wrong nonce */
   bad_final("c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "nonce"); /* client only */
   bad_final("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
             "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndV*=", "proof");                        /* bad base64 */
   bad_final("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
             "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndQ==", "proof");                        /* 31 bytes */
   bad_final("c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
             "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "channel-binding attribute");    /* gs2 was n */
   bad_final("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
             "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "channel-binding attribute");    /* p= binding */
   bad_final(RFC_CLIENT_FINAL ",x=1", "p=");                                                    /* p= not last */
   bad_final("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
             "p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "verification");                 /* wrong proof */

   /* "y,," is accepted and then needs c=eSws */
   {
      const char *c1 = "y,,n=,r=abcdef";
      char c2[1024];

      memset(&srv, 0, sizeof(srv));
      assert_true(sl_scram_server_first(&srv, &sec, "user", c1, strlen(c1), out, sizeof(out), &err));
      *strchr(out, ',') = '\0'; /* out = "r=<nonce>" */
      snprintf(c2, sizeof(c2), "c=biws,%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", out);
      assert_false(sl_scram_server_final(&srv, c2, strlen(c2), out, sizeof(out), &err));
      assert_string_equal(err, "unexpected SCRAM channel-binding attribute in client-final-message");
   }

   /* client side: bad server-first / server-final */
   bad_server_first("");
   bad_server_first("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==");     /* no i= */
   bad_server_first("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,i=4096");                        /* no s= */
   bad_server_first("s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");                                                  /* no r= */
   /* nonce not starting with ours */
   bad_server_first("r=XOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
   bad_server_first("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"); /* server added nothing */
   /* bad base64 salt, bad iterations, mandatory extension, trailing comma */
   bad_server_first("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7s!EsUEjb6gQ==,i=4096");
   bad_server_first("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0");
   bad_server_first("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1");
   bad_server_first("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999");
   bad_server_first("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
                    "i=99999999999999999999");
   bad_server_first("m=x,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
   bad_server_first(RFC_SERVER_FIRST ",");

   sl_scram_client_init(&cl, "pencil", NULL, NULL);
   assert_true(sl_scram_client_set_nonce(&cl, "rOprNGfwEbeRWgbNEkqO", "user"));
   assert_true(sl_scram_client_first(&cl, out, sizeof(out)));
   assert_true(sl_scram_client_final(&cl, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, sizeof(out), &err));
   assert_false(sl_scram_client_verify(&cl, "e=invalid-proof", 15, &err));
   assert_string_equal(err, "SCRAM server error: invalid-proof");
   assert_false(sl_scram_client_verify(&cl, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err)); /* used up */

   /* client init without password or keys, or an oversized password */
   sl_scram_client_init(&cl, NULL, NULL, NULL);
   assert_false(sl_scram_client_first(&cl, out, sizeof(out)));
   {
      char big[SL_SCRAM_MAX_PASSWORD + 1];

      memset(big, 'a', sizeof(big) - 1);
      big[sizeof(big) - 1] = '\0';
      sl_scram_client_init(&cl, big, NULL, NULL);
      assert_false(sl_scram_client_first(&cl, out, sizeof(out)));
   }
   /* too small output buffers */
   sl_scram_client_init(&cl, "pencil", NULL, NULL);
   assert_false(sl_scram_client_first(&cl, out, 20));
   memset(&srv, 0, sizeof(srv));
   assert_false(sl_scram_server_first(&srv, &sec, "user", RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out, 20, &err));
}

/* ---- channel binding (SCRAM-SHA-256-PLUS, tls-server-end-point) ---- */

/* b64("p=tls-server-end-point,," + bytes 0..31), computed with python3's base64 module. */
#define CB32_C_ATTR "cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
/* the same with bytes 0..63 (a SHA-512 certificate hash, the longest there is) */
#define CB64_C_ATTR                                                                                                \
   "cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4" \
   "OTo7PD0+Pw=="

static void cb_bytes(uint8_t *out, size_t n)
{
   for (size_t i = 0; i < n; i++)
      out[i] = (uint8_t)i;
}

/* A full exchange: the server offered PLUS when srv_cb != NULL and the client chose whatever
 * sl_scram_client_mechanism says. Returns the server's final verdict; *c2_out gets the client-final. */
static bool exchange_cb(sl_scram_client *cl, const sl_scram_secret *sec, sl_scram_server *srv, const uint8_t *srv_cb,
                        size_t srv_cb_len, const char **err, char *c2_out, size_t c2_cap)
{
   char c1[256], s1[512], c2[512], s2[128];
   bool ok;

   memset(srv, 0, sizeof(*srv));
   if (srv_cb != NULL)
      assert_true(sl_scram_server_set_channel_binding(srv, srv_cb, srv_cb_len));
   assert_true(sl_scram_server_select_mechanism(srv, sl_scram_client_mechanism(cl), err));
   assert_true(sl_scram_client_first(cl, c1, sizeof(c1)));
   assert_true(sl_scram_server_first(srv, sec, "alice", c1, strlen(c1), s1, sizeof(s1), err));
   assert_true(sl_scram_client_final(cl, s1, strlen(s1), c2, sizeof(c2), err));
   if (c2_out != NULL)
      snprintf(c2_out, c2_cap, "%s", c2);
   *err = NULL;
   ok = sl_scram_server_final(srv, c2, strlen(c2), s2, sizeof(s2), err);
   if (ok) {
      assert_null(*err);
      assert_true(sl_scram_client_verify(cl, s2, strlen(s2), err));
   } else {
      assert_non_null(*err);
      assert_non_null(srv->sqlstate);
      assert_false(srv->have_client_key);
   }
   return ok;
}

static void test_cb_bound_round_trip(void **state)
{
   sl_scram_secret sec;
   sl_scram_client cl;
   sl_scram_server srv;
   uint8_t cb[64];
   char c1[256], c2[512];
   const char *err = NULL;

   (void)state;
   cb_bytes(cb, sizeof(cb));
   assert_true(sl_scram_secret_from_password("correct horse", NULL, 0, 4096, &sec));

   /* the client-first message and the mechanism name agree */
   sl_scram_client_init(&cl, "correct horse", NULL, NULL);
   assert_string_equal(sl_scram_client_mechanism(&cl), "SCRAM-SHA-256");
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb, 32));
   assert_string_equal(sl_scram_client_mechanism(&cl), "SCRAM-SHA-256-PLUS");
   assert_true(sl_scram_client_first(&cl, c1, sizeof(c1)));
   assert_int_equal(strncmp(c1, "p=tls-server-end-point,,n=,r=", 29), 0);
   assert_int_equal(strlen(c1), 29 + 32);
   assert_false(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_NONE, NULL, 0)); /* too late */

   /* same certificate hash on both sides: success, and c= is the header plus the hash */
   sl_scram_client_init(&cl, "correct horse", NULL, NULL);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb, 32));
   assert_true(exchange_cb(&cl, &sec, &srv, cb, 32, &err, c2, sizeof(c2)));
   assert_int_equal(strncmp(c2, "c=" CB32_C_ATTR ",r=", strlen("c=" CB32_C_ATTR ",r=")), 0);
   assert_true(srv.have_client_key);
   assert_int_equal(srv.cbind_flag, 'p');

   /* a 64-byte hash (SHA-512 signed certificate) */
   sl_scram_client_init(&cl, "correct horse", NULL, NULL);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb, 64));
   assert_true(exchange_cb(&cl, &sec, &srv, cb, 64, &err, c2, sizeof(c2)));
   assert_int_equal(strncmp(c2, "c=" CB64_C_ATTR ",r=", strlen("c=" CB64_C_ATTR ",r=")), 0);

   /* the wrong password still fails with binding */
   sl_scram_client_init(&cl, "wrong horse", NULL, NULL);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb, 32));
   assert_false(exchange_cb(&cl, &sec, &srv, cb, 32, &err, NULL, 0));
   assert_string_equal(err, "SCRAM proof verification failed");
   assert_string_equal(srv.sqlstate, "28P01");
}

/* Someone in the middle (a TLS-terminating proxy) shows the client a different certificate than the
 * server's: the hashes differ and the c= check fails, before the proof is looked at. */
static void test_cb_mismatch_fails(void **state)
{
   sl_scram_secret sec;
   sl_scram_client cl;
   sl_scram_server srv;
   uint8_t cb[32], other[32];
   const char *err = NULL;

   (void)state;
   cb_bytes(cb, sizeof(cb));
   memcpy(other, cb, sizeof(other));
   other[31] ^= 0x80;
   assert_true(sl_scram_secret_from_password("correct horse", NULL, 0, 4096, &sec));

   sl_scram_client_init(&cl, "correct horse", NULL, NULL);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb, 32));
   assert_false(exchange_cb(&cl, &sec, &srv, other, 32, &err, NULL, 0));
   assert_string_equal(err, "SCRAM channel binding check failed");
   assert_string_equal(srv.sqlstate, "28000");

   /* a shorter hash (a prefix of the right one) is no match either */
   sl_scram_client_init(&cl, "correct horse", NULL, NULL);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb, 31));
   assert_false(exchange_cb(&cl, &sec, &srv, cb, 32, &err, NULL, 0));
   assert_string_equal(err, "SCRAM channel binding check failed");

   /* and neither is the proof of a client that was bound differently, replayed with the right c=: the
    * proof covers c= through AuthMessage */
   {
      char c1[256], s1[512], c2[512], forged[600], s2[128];
      const char *rest;

      memset(&srv, 0, sizeof(srv));
      assert_true(sl_scram_server_set_channel_binding(&srv, cb, 32));
      assert_true(sl_scram_server_select_mechanism(&srv, "SCRAM-SHA-256-PLUS", &err));
      sl_scram_client_init(&cl, "correct horse", NULL, NULL);
      assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, other, 32));
      assert_true(sl_scram_client_first(&cl, c1, sizeof(c1)));
      assert_true(sl_scram_server_first(&srv, &sec, "alice", c1, strlen(c1), s1, sizeof(s1), &err));
      assert_true(sl_scram_client_final(&cl, s1, strlen(s1), c2, sizeof(c2), &err));
      rest = strstr(c2, ",r=");
      assert_non_null(rest);
      snprintf(forged, sizeof(forged), "c=%s%s", CB32_C_ATTR, rest);
      assert_false(sl_scram_server_final(&srv, forged, strlen(forged), s2, sizeof(s2), &err));
      assert_string_equal(err, "SCRAM proof verification failed");
      assert_false(srv.have_client_key);
   }
}

/* Pass-through: the ClientKey recovered from a bound login logs in bound to the next server. */
static void test_cb_pass_through(void **state)
{
   sl_scram_secret sec;
   sl_scram_client cl;
   sl_scram_server front, back;
   uint8_t cb_front[32], cb_back[48], ck[32];
   const char *err = NULL;

   (void)state;
   cb_bytes(cb_front, sizeof(cb_front));
   cb_bytes(cb_back, sizeof(cb_back));
   cb_back[0] = 0xee;
   assert_true(sl_scram_parse_secret(TROUB_SECRET, &sec));
   sl_scram_client_init(&cl, "Tr0ub4dor&3", NULL, NULL);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb_front, sizeof(cb_front)));
   assert_true(exchange_cb(&cl, &sec, &front, cb_front, sizeof(cb_front), &err, NULL, 0));
   assert_true(front.have_client_key);
   memcpy(ck, front.client_key, 32);

   sl_scram_client_init(&cl, NULL, ck, sec.server_key);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb_back, sizeof(cb_back)));
   assert_true(exchange_cb(&cl, &sec, &back, cb_back, sizeof(cb_back), &err, NULL, 0));
   assert_memory_equal(back.client_key, ck, 32);

   /* bound to the wrong certificate: refused */
   sl_scram_client_init(&cl, NULL, ck, sec.server_key);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb_front, sizeof(cb_front)));
   assert_false(exchange_cb(&cl, &sec, &back, cb_back, sizeof(cb_back), &err, NULL, 0));
   assert_string_equal(err, "SCRAM channel binding check failed");

   /* and a wrong ClientKey fails at the proof */
   ck[0] ^= 1;
   sl_scram_client_init(&cl, NULL, ck, sec.server_key);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb_back, sizeof(cb_back)));
   assert_false(exchange_cb(&cl, &sec, &back, cb_back, sizeof(cb_back), &err, NULL, 0));
   assert_string_equal(err, "SCRAM proof verification failed");
}

/* "y,,": the client could bind but the server did not offer PLUS. Fine when that is true, a downgrade
 * when the server did offer it. */
static void test_cb_client_only(void **state)
{
   sl_scram_secret sec;
   sl_scram_client cl;
   sl_scram_server srv;
   uint8_t cb[32];
   char c1[256], c2[512], s1[512];
   const char *err = NULL;

   (void)state;
   cb_bytes(cb, sizeof(cb));
   assert_true(sl_scram_secret_from_password("correct horse", NULL, 0, 4096, &sec));

   sl_scram_client_init(&cl, "correct horse", NULL, NULL);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_CLIENT_ONLY, NULL, 0));
   assert_string_equal(sl_scram_client_mechanism(&cl), "SCRAM-SHA-256");
   assert_true(exchange_cb(&cl, &sec, &srv, NULL, 0, &err, c2, sizeof(c2)));
   assert_int_equal(strncmp(c2, "c=eSws,r=", 9), 0);
   assert_int_equal(srv.cbind_flag, 'y');

   /* the server offered PLUS (someone removed it from the list the client saw) */
   sl_scram_client_init(&cl, "correct horse", NULL, NULL);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_CLIENT_ONLY, NULL, 0));
   assert_true(sl_scram_client_first(&cl, c1, sizeof(c1)));
   assert_int_equal(strncmp(c1, "y,,n=,r=", 8), 0);
   memset(&srv, 0, sizeof(srv));
   assert_true(sl_scram_server_set_channel_binding(&srv, cb, sizeof(cb)));
   assert_true(sl_scram_server_select_mechanism(&srv, sl_scram_client_mechanism(&cl), &err));
   assert_false(sl_scram_server_first(&srv, &sec, "alice", c1, strlen(c1), s1, sizeof(s1), &err));
   assert_string_equal(err, "SCRAM channel binding negotiation error (the client supports channel binding and "
                            "thinks the server does not, but this server offered it)");
   assert_string_equal(srv.sqlstate, "28000");
   /* the same without a select_mechanism call (the default is SCRAM-SHA-256) */
   memset(&srv, 0, sizeof(srv));
   assert_true(sl_scram_server_set_channel_binding(&srv, cb, sizeof(cb)));
   assert_false(sl_scram_server_first(&srv, &sec, "alice", c1, strlen(c1), s1, sizeof(s1), &err));
   assert_string_equal(srv.sqlstate, "28000");

   /* "n,," is fine whether or not PLUS was offered */
   sl_scram_client_init(&cl, "correct horse", NULL, NULL);
   assert_true(exchange_cb(&cl, &sec, &srv, cb, sizeof(cb), &err, c2, sizeof(c2)));
   assert_int_equal(strncmp(c2, "c=biws,r=", 9), 0);
}

/* Feed a client-first to a fresh server with the given offer and mechanism, expecting failure. */
static void cb_bad_first(bool offered, const char *mech, const char *msg, const char *want_err, const char *sqlstate)
{
   sl_scram_server srv;
   sl_scram_secret sec = rfc_secret();
   uint8_t cb[32];
   char out[512];
   const char *err = NULL;

   cb_bytes(cb, sizeof(cb));
   memset(&srv, 0, sizeof(srv));
   if (offered)
      assert_true(sl_scram_server_set_channel_binding(&srv, cb, sizeof(cb)));
   if (mech != NULL)
      assert_true(sl_scram_server_select_mechanism(&srv, mech, &err));
   assert_false(sl_scram_server_first(&srv, &sec, "user", msg, strlen(msg), out, sizeof(out), &err));
   assert_string_equal(err, want_err);
   assert_string_equal(srv.sqlstate, sqlstate);
   /* one exchange per struct: the refused one cannot continue */
   assert_false(sl_scram_server_final(&srv, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof(out), &err));
}

/* Feed a client-first to a fresh server expecting success. */
static void cb_good_first(bool offered, const char *mech, const char *msg, char flag)
{
   sl_scram_server srv;
   sl_scram_secret sec = rfc_secret();
   uint8_t cb[32];
   char out[512];
   const char *err = NULL;

   cb_bytes(cb, sizeof(cb));
   memset(&srv, 0, sizeof(srv));
   if (offered)
      assert_true(sl_scram_server_set_channel_binding(&srv, cb, sizeof(cb)));
   if (mech != NULL)
      assert_true(sl_scram_server_select_mechanism(&srv, mech, &err));
   assert_true(sl_scram_server_first(&srv, &sec, "user", msg, strlen(msg), out, sizeof(out), &err));
   assert_int_equal(srv.cbind_flag, flag);
}

#define PLUS_NO_DATA \
   "malformed SCRAM message (the client selected SCRAM-SHA-256-PLUS, but the message has no channel binding data)"
#define PLAIN_WITH_DATA                                                                                 \
   "malformed SCRAM message (the client selected SCRAM-SHA-256 without channel binding, but the message " \
   "includes channel binding data)"
#define DOWNGRADE                                                                                    \
   "SCRAM channel binding negotiation error (the client supports channel binding and thinks the server " \
   "does not, but this server offered it)"

static void test_cb_negotiation_errors(void **state)
{
   sl_scram_server srv;
   sl_scram_secret sec = rfc_secret();
   uint8_t cb[65];
   char out[512];
   const char *err = NULL;
   const char *plus = "SCRAM-SHA-256-PLUS", *plain = "SCRAM-SHA-256";

   (void)state;
   cb_bytes(cb, sizeof(cb));

   /* SCRAM-SHA-256-PLUS chosen: only p=tls-server-end-point will do */
   cb_bad_first(true, plus, "n,,n=,r=abc", PLUS_NO_DATA, "08P01");
   cb_bad_first(true, plus, "y,,n=,r=abc", PLUS_NO_DATA, "08P01");
   cb_bad_first(true, plus, "p=tls-unique,,n=,r=abc", "unsupported SCRAM channel-binding type \"tls-unique\"",
                "08P01");
   cb_bad_first(true, plus, "p=tls-server-end-pointX,,n=,r=abc",
                "unsupported SCRAM channel-binding type \"tls-server-end-pointX\"", "08P01");
   cb_bad_first(true, plus, "p=t\x01\"\xc3\xa9,,n=,r=abc", "unsupported SCRAM channel-binding type \"t????\"",
                "08P01"); /* client bytes quoted as printable ASCII */
   cb_bad_first(true, plus, "p=,,n=,r=abc", "malformed SCRAM message (bad GS2 header)", "08P01");
   cb_bad_first(true, plus, "p,,n=,r=abc", "malformed SCRAM message (bad GS2 header)", "08P01");
   cb_bad_first(true, plus, "p=tls-server-end-point", "malformed SCRAM message (bad GS2 header)", "08P01");
   cb_bad_first(true, plus, "p=tls-server-end-point,", "malformed SCRAM message (bad GS2 header)", "08P01");
   cb_bad_first(true, plus, "x,,n=,r=abc", "malformed SCRAM message (bad GS2 header)", "08P01");
   cb_bad_first(true, plus, "p=tls-server-end-point,a=admin,n=,r=abc",
                "SCRAM authorization identity is not supported", "0A000");
   cb_good_first(true, plus, "p=tls-server-end-point,,n=,r=abc", 'p');
   cb_good_first(true, plus, "p=tls-server-end-point,,n=user,r=abc,x=ext", 'p');

   /* SCRAM-SHA-256 chosen (or nothing said, which means the same) */
   cb_bad_first(true, plain, "p=tls-server-end-point,,n=,r=abc", PLAIN_WITH_DATA, "08P01");
   cb_bad_first(false, plain, "p=tls-server-end-point,,n=,r=abc", PLAIN_WITH_DATA, "08P01");
   cb_bad_first(false, NULL, "p=tls-server-end-point,,n=,r=abc", PLAIN_WITH_DATA, "08P01");
   cb_bad_first(true, plain, "y,,n=,r=abc", DOWNGRADE, "28000");
   cb_bad_first(true, NULL, "y,,n=,r=abc", DOWNGRADE, "28000");
   cb_good_first(false, plain, "y,,n=,r=abc", 'y');
   cb_good_first(false, NULL, "y,,n=,r=abc", 'y');
   cb_good_first(true, plain, "n,,n=,r=abc", 'n');
   cb_good_first(false, NULL, "n,,n=,r=abc", 'n');
   cb_bad_first(true, plain, "n,a=admin,n=,r=abc", "SCRAM authorization identity is not supported", "0A000");
   cb_bad_first(true, plain, "n,,m=ext,n=,r=abc", "SCRAM mandatory extension is not supported", "0A000");

   /* mechanisms: PLUS only when offered; nothing else at all. A refused choice ends the exchange. */
   {
      const char *bad[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "scram-sha-256", "", "SCRAM-SHA-256-PLUSX", NULL};

      for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
         memset(&srv, 0, sizeof(srv));
         if (i > 0)
            assert_true(sl_scram_server_set_channel_binding(&srv, cb, 32));
         err = NULL;
         assert_false(sl_scram_server_select_mechanism(&srv, bad[i], &err));
         assert_string_equal(err, "client selected an invalid SASL authentication mechanism");
         assert_string_equal(srv.sqlstate, "08P01");
         assert_false(sl_scram_server_first(&srv, &sec, "user", RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out,
                                            sizeof(out), &err));
      }
   }

   /* set_channel_binding: 1..64 bytes, before the exchange only */
   memset(&srv, 0, sizeof(srv));
   assert_false(sl_scram_server_set_channel_binding(&srv, NULL, 32));
   assert_false(sl_scram_server_set_channel_binding(&srv, cb, 0));
   assert_false(sl_scram_server_set_channel_binding(&srv, cb, 65));
   assert_true(sl_scram_server_set_channel_binding(&srv, cb, 64));
   assert_true(sl_scram_server_first(&srv, &sec, "user", RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out,
                                     sizeof(out), &err));
   assert_false(sl_scram_server_set_channel_binding(&srv, cb, 32));
   assert_false(sl_scram_server_select_mechanism(&srv, "SCRAM-SHA-256", &err));

   /* the mock exchange (unknown user) negotiates binding the same way, then fails at the proof */
   {
      sl_scram_client cl;
      const char *e = NULL;

      sl_scram_client_init(&cl, "anything", NULL, NULL);
      assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb, 32));
      assert_false(exchange_cb(&cl, NULL, &srv, cb, 32, &e, NULL, 0));
      assert_string_equal(e, "SCRAM proof verification failed");
      assert_string_equal(srv.sqlstate, "28P01");
   }
}

/* client-final c= values that do not match the gs2 header of client-first */
static void test_cb_final_mismatch(void **state)
{
   sl_scram_server srv;
   sl_scram_secret sec = rfc_secret();
   uint8_t cb[32];
   char out[512], c2[1024], nonce[256];
   const char *err = NULL;
   const char *c1 = "p=tls-server-end-point,,n=,r=abcdef";
   struct {
      const char *c, *err, *sqlstate;
   } cases[] = {
      {"biws", "SCRAM channel binding check failed", "28000"},
      {"eSws", "SCRAM channel binding check failed", "28000"},
      {"cD10bHMtc2VydmVyLWVuZC1wb2ludCws", "SCRAM channel binding check failed", "28000"}, /* no data */
      {CB32_C_ATTR "x", "SCRAM channel binding check failed", "28000"},
      {"", "SCRAM channel binding check failed", "28000"},
   };

   (void)state;
   cb_bytes(cb, sizeof(cb));
   for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
      memset(&srv, 0, sizeof(srv));
      assert_true(sl_scram_server_set_channel_binding(&srv, cb, sizeof(cb)));
      assert_true(sl_scram_server_select_mechanism(&srv, "SCRAM-SHA-256-PLUS", &err));
      assert_true(sl_scram_server_first(&srv, &sec, "user", c1, strlen(c1), out, sizeof(out), &err));
      snprintf(nonce, sizeof(nonce), "%.*s", (int)(strchr(out, ',') - out), out); /* "r=<nonce>" */
      snprintf(c2, sizeof(c2), "c=%s,%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", cases[i].c, nonce);
      assert_false(sl_scram_server_final(&srv, c2, strlen(c2), out, sizeof(out), &err));
      assert_string_equal(err, cases[i].err);
      assert_string_equal(srv.sqlstate, cases[i].sqlstate);
   }

   /* 'n' in client-first, then a bound c=: a protocol violation */
   bad_final("c=" CB32_C_ATTR ",r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
             "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
             "unexpected SCRAM channel-binding attribute in client-final-message");
}

static void test_cb_client_api(void **state)
{
   sl_scram_client cl;
   uint8_t cb[65];
   char out[512];

   (void)state;
   cb_bytes(cb, sizeof(cb));
   /* BOUND needs 1..64 bytes; the other modes take none; a refused call leaves the struct unusable */
   const struct {
      sl_scram_cb_mode mode;
      const uint8_t *data;
      size_t len;
   } bad[] = {
      {SL_SCRAM_CB_BOUND, NULL, 32},     {SL_SCRAM_CB_BOUND, cb, 0},    {SL_SCRAM_CB_BOUND, cb, 65},
      {SL_SCRAM_CB_NONE, cb, 32},        {SL_SCRAM_CB_CLIENT_ONLY, cb, 32},
      {(sl_scram_cb_mode)7, NULL, 0},
   };
   for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
      sl_scram_client_init(&cl, "pencil", NULL, NULL);
      assert_false(sl_scram_client_set_channel_binding(&cl, bad[i].mode, bad[i].data, bad[i].len));
      assert_false(sl_scram_client_first(&cl, out, sizeof(out)));
   }
   /* a bad init stays bad */
   sl_scram_client_init(&cl, NULL, NULL, NULL);
   assert_false(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb, 32));

   /* the last call wins before client_first; NONE is today's "n,," */
   sl_scram_client_init(&cl, "pencil", NULL, NULL);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb, 32));
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_NONE, NULL, 0));
   assert_string_equal(sl_scram_client_mechanism(&cl), "SCRAM-SHA-256");
   assert_true(sl_scram_client_set_nonce(&cl, "rOprNGfwEbeRWgbNEkqO", "user"));
   assert_true(sl_scram_client_first(&cl, out, sizeof(out)));
   assert_string_equal(out, RFC_CLIENT_FIRST);

   /* the longer gs2 header must fit the output buffer */
   sl_scram_client_init(&cl, "pencil", NULL, NULL);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb, 32));
   assert_true(sl_scram_client_set_nonce(&cl, "abc", NULL));
   assert_false(sl_scram_client_first(&cl, out, strlen("p=tls-server-end-point,,n=,r=abc")));
   assert_true(sl_scram_client_first(&cl, out, strlen("p=tls-server-end-point,,n=,r=abc") + 1));
   assert_string_equal(out, "p=tls-server-end-point,,n=,r=abc");
}

static void test_cb_mechanism_list(void **state)
{
   size_t len = 0;
   const char *m;

   (void)state;
   m = sl_scram_server_mechanisms(true, &len);
   assert_int_equal(len, sizeof("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0"));
   assert_memory_equal(m, "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0", len);
   m = sl_scram_server_mechanisms(false, &len);
   assert_int_equal(len, sizeof("SCRAM-SHA-256\0"));
   assert_memory_equal(m, "SCRAM-SHA-256\0", len);
}

/* Recorded over TLS on this project's machine (tests/integration/scram_probe --trace), with the role "app"
 * (password "apppw") of a PostgreSQL 15.18 cluster and its certificate (ECDSA with SHA-256): */
#define PG_APP_SECRET                                                                                      \
   "SCRAM-SHA-256$4096:ONhRv3MMO6UTP5xSTtsKPg==$+RmeqY5PGwtUSo73dsaNtUukTyKzXw81SoRbEnzuKl0=:"            \
   "GRwioXhOFRiLCykn9uXWKyrZldXXDgREj6OtTvZ0BGA="
#define PG_CERT_HASH_B64 "0MsEm5wN3USOZHBescdQl2bIXoX7Q8uHgQAMt92NRBA=" /* sha256 of the DER certificate */
#define PG_C_ATTR "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws0MsEm5wN3USOZHBescdQl2bIXoX7Q8uHgQAMt92NRBA="
/* (1) pgsluice's client side (fixed client nonce) against the PostgreSQL 15.18 server: S1 and S2 are the
 * server's. */
#define PGV_C1 "p=tls-server-end-point,,n=,r=pgsluice-vector-nonce"
#define PGV_SNONCE "fAoQVqPklxYFVqNP5dhgWYJu"
#define PGV_S1 "r=pgsluice-vector-noncefAoQVqPklxYFVqNP5dhgWYJu,s=ONhRv3MMO6UTP5xSTtsKPg==,i=4096"
#define PGV_C2 \
   PG_C_ATTR ",r=pgsluice-vector-noncefAoQVqPklxYFVqNP5dhgWYJu,p=NL6PSZ6guhdT7bJgOZiJZw+H0whBWc7iqpYHzRfnjGk="
#define PGV_S2 "v=+ZGV7ps/vMqhYQ8EAWdh7uvpy1MAi32VdUAWO4wFD1s="
/* (2) libpq 15.18 (psql, channel_binding=require) against pgsluice's server side (fixed server nonce): C1 and
 * C2 are libpq's, and libpq accepted S2. */
#define LPQ_C1 "p=tls-server-end-point,,n=,r=S1YGoVn23PmB78jzm5SBXvg8"
#define LPQ_CNONCE "S1YGoVn23PmB78jzm5SBXvg8"
#define LPQ_SNONCE "pgsluice+server+nonce"
#define LPQ_S1 "r=S1YGoVn23PmB78jzm5SBXvg8pgsluice+server+nonce,s=ONhRv3MMO6UTP5xSTtsKPg==,i=4096"
#define LPQ_C2 \
   PG_C_ATTR ",r=S1YGoVn23PmB78jzm5SBXvg8pgsluice+server+nonce,p=OOqYKUMl0seA1wa0QS7Kgm7YrnJpJyN/oVQeuxVZtb4="
#define LPQ_S2 "v=H0oHy2aIWIbQrbKXVy6qYbpvzgQsuwavSlxbQls8UY0="

/* Replay one recorded exchange on both of our sides: the server must answer exactly as recorded, and the
 * client must write exactly the recorded client messages. */
static void replay_vector(const char *cnonce, const char *snonce, const char *c1, const char *s1, const char *c2,
                          const char *s2)
{
   sl_scram_secret sec;
   sl_scram_server srv;
   sl_scram_client cl;
   uint8_t cb[64];
   size_t cb_len = 0;
   char out[512];
   const char *err = NULL;

   assert_true(sl_scram_parse_secret(PG_APP_SECRET, &sec));
   assert_true(sl_base64_decode(PG_CERT_HASH_B64, strlen(PG_CERT_HASH_B64), cb, sizeof(cb), &cb_len));
   assert_int_equal(cb_len, 32);

   memset(&srv, 0, sizeof(srv));
   assert_true(sl_scram_server_set_channel_binding(&srv, cb, cb_len));
   assert_true(sl_scram_server_select_mechanism(&srv, "SCRAM-SHA-256-PLUS", &err));
   assert_true(sl_scram_server_set_nonce(&srv, snonce));
   assert_true(sl_scram_server_first(&srv, &sec, "app", c1, strlen(c1), out, sizeof(out), &err));
   assert_string_equal(out, s1);
   assert_true(sl_scram_server_final(&srv, c2, strlen(c2), out, sizeof(out), &err));
   assert_string_equal(out, s2);
   sl_scram_server_clear(&srv);

   sl_scram_client_init(&cl, "apppw", NULL, NULL);
   assert_true(sl_scram_client_set_channel_binding(&cl, SL_SCRAM_CB_BOUND, cb, cb_len));
   assert_true(sl_scram_client_set_nonce(&cl, cnonce, NULL));
   assert_true(sl_scram_client_first(&cl, out, sizeof(out)));
   assert_string_equal(out, c1);
   assert_true(sl_scram_client_final(&cl, s1, strlen(s1), out, sizeof(out), &err));
   assert_string_equal(out, c2);
   assert_true(sl_scram_client_verify(&cl, s2, strlen(s2), &err));
   sl_scram_client_clear(&cl);

   /* the same recorded client-final against a server bound to another certificate: refused */
   cb[5] ^= 0x10;
   memset(&srv, 0, sizeof(srv));
   assert_true(sl_scram_server_set_channel_binding(&srv, cb, cb_len));
   assert_true(sl_scram_server_select_mechanism(&srv, "SCRAM-SHA-256-PLUS", &err));
   assert_true(sl_scram_server_set_nonce(&srv, snonce));
   assert_true(sl_scram_server_first(&srv, &sec, "app", c1, strlen(c1), out, sizeof(out), &err));
   assert_false(sl_scram_server_final(&srv, c2, strlen(c2), out, sizeof(out), &err));
   assert_string_equal(err, "SCRAM channel binding check failed");
}

static void test_cb_postgresql_vectors(void **state)
{
   (void)state;
   replay_vector("pgsluice-vector-nonce", PGV_SNONCE, PGV_C1, PGV_S1, PGV_C2, PGV_S2);
   replay_vector(LPQ_CNONCE, LPQ_SNONCE, LPQ_C1, LPQ_S1, LPQ_C2, LPQ_S2);
}

int main(void)
{
   const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_random),
      cmocka_unit_test(test_random_small_draws),
      cmocka_unit_test(test_random_fork),
      cmocka_unit_test(test_md5),
      cmocka_unit_test(test_saslprep),
      cmocka_unit_test(test_secret_parse),
      cmocka_unit_test(test_rfc7677_server),
      cmocka_unit_test(test_rfc7677_client),
      cmocka_unit_test(test_scram_client_keys_derived_elsewhere),
      cmocka_unit_test(test_round_trip_password),
      cmocka_unit_test(test_pass_through),
      cmocka_unit_test(test_mock),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_cb_bound_round_trip),
      cmocka_unit_test(test_cb_mismatch_fails),
      cmocka_unit_test(test_cb_pass_through),
      cmocka_unit_test(test_cb_client_only),
      cmocka_unit_test(test_cb_negotiation_errors),
      cmocka_unit_test(test_cb_final_mismatch),
      cmocka_unit_test(test_cb_client_api),
      cmocka_unit_test(test_cb_mechanism_list),
      cmocka_unit_test(test_cb_postgresql_vectors),
   };

   return cmocka_run_group_tests(tests, NULL, NULL);
}
