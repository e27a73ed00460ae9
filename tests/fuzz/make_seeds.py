#!/usr/bin/python3
"""make_seeds.py - writes the seed corpus of each fuzz target into tests/fuzz/corpus/<target>/.

Seeds are real messages and files in the layout each target reads (see the comment at the top of
each fuzz_<target>.c): what psql, psycopg and asyncpg send at login, SCRAM exchanges, the config
file of the product guide, and so on. The files are committed; run this again after changing a
target's input layout (it rewrites the seeds it knows and leaves other files alone).

    /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import base64
import hashlib
import hmac
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- the PostgreSQL wire format ----

def msg(t, body=b""):
    return t.encode() + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def startup(params, version=196608):
    body = struct.pack("!I", version) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


SSL_REQUEST = struct.pack("!II", 8, 80877103)
GSSENC_REQUEST = struct.pack("!II", 8, 80877104)
CANCEL = struct.pack("!IIII", 16, 80877102, 0x00000005, 0x12345678)

PSQL = [("user", "alice"), ("database", "appdb"), ("application_name", "psql"), ("client_encoding", "UTF8")]
PSYCOPG = [("user", "alice"), ("database", "appdb"), ("client_encoding", "UTF8")]
ASYNCPG = [("client_encoding", "'utf-8'"), ("user", "alice"), ("database", "appdb")]
JDBC = [("user", "alice"), ("database", "appdb"), ("client_encoding", "UTF8"), ("DateStyle", "ISO"),
        ("TimeZone", "UTC"), ("extra_float_digits", "2")]


def parse(name, query, types=()):
    return msg("P", cstr(name) + cstr(query) + struct.pack("!H", len(types)) +
               b"".join(struct.pack("!I", t) for t in types))


def bind(portal, stmt, params=(), result_formats=()):
    body = cstr(portal) + cstr(stmt) + struct.pack("!H", 0) + struct.pack("!H", len(params))
    for p in params:
        body += struct.pack("!i", -1) if p is None else struct.pack("!I", len(p)) + p
    body += struct.pack("!H", len(result_formats)) + b"".join(struct.pack("!h", f) for f in result_formats)
    return msg("B", body)


def describe(kind, name):
    return msg("D", kind.encode() + cstr(name))


def execute(portal="", rows=0):
    return msg("E", cstr(portal) + struct.pack("!I", rows))


def close(kind, name):
    return msg("C", kind.encode() + cstr(name))


SYNC = msg("S")
FLUSH = msg("H")


def query(q):
    return msg("Q", cstr(q))


# ---- SCRAM ----

def scram_keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    ck = hmac.new(salted, b"Client Key", "sha256").digest()
    sk = hmac.new(salted, b"Server Key", "sha256").digest()
    return ck, sk


def b64(b):
    return base64.b64encode(b).decode()


def startup_seeds():
    t = "startup"
    write(t, "psql", startup(PSQL))
    write(t, "psycopg", startup(PSYCOPG))
    write(t, "asyncpg", startup(ASYNCPG))
    write(t, "pgjdbc", startup(JDBC))
    write(t, "ssl_then_startup", SSL_REQUEST + startup(PSQL))
    write(t, "gssenc_ssl_startup", GSSENC_REQUEST + SSL_REQUEST + startup(PSYCOPG))
    write(t, "cancel", CANCEL)
    write(t, "protocol_3_2", startup(PSQL, version=196610))
    write(t, "replication", startup([("user", "rep"), ("replication", "database"), ("database", "x")]))
    write(t, "repeated_user", startup([("user", "a"), ("user", "b"), ("database", "d")]))


def scram_server_seeds():
    t = "scram_server"
    sep = b"\n--\n"
    cn = "rOprNGfwEbeRWgbNEkqO"
    sn = "fuzzServerNonce0123456789"
    # flag 2: the harness fills in the right proof after "p="
    write(t, "ok_auto_proof", b"\x02" + f"n,,n=,r={cn}".encode() + sep + f"c=biws,r={cn}{sn},p=".encode())
    write(t, "ok_auto_proof_y", b"\x02" + f"y,,n=,r={cn}".encode() + sep + f"c=eSws,r={cn}{sn},p=".encode())
    write(t, "ok_auto_proof_ext", b"\x06" + f"n,,n=alice,r={cn},x=ext".encode() + sep +
          f"c=biws,r={cn}{sn},z=extension,p=".encode())
    write(t, "wrong_proof", b"\x00" + f"n,,n=,r={cn}".encode() + sep +
          f"c=biws,r={cn}{sn},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".encode())
    write(t, "mock_user", b"\x03" + f"n,,n=,r={cn}".encode() + sep + f"c=biws,r={cn}{sn},p=".encode())
    write(t, "channel_binding", b"\x00" + f"p=tls-server-end-point,,n=,r={cn}".encode() + sep + b"c=biws")
    write(t, "authzid", b"\x00" + f"n,a=bob,n=,r={cn}".encode() + sep + b"")
    write(t, "mandatory_ext", b"\x00" + f"n,,m=ext,n=,r={cn}".encode() + sep + b"")
    write(t, "nonce_mismatch", b"\x02" + f"n,,n=,r={cn}".encode() + sep + f"c=biws,r={cn}XX,p=".encode())
    # channel binding: flag 8 offers SCRAM-SHA-256-PLUS (certificate hash bytes 0..31), 16 selects it, 32
    # selects SCRAM-SHA-256
    hdr = b"p=tls-server-end-point,,"
    cbind = base64.b64encode(hdr + bytes(range(32))).decode()
    write(t, "plus_ok_auto_proof", bytes([2 | 8 | 16]) + hdr + f"n=,r={cn}".encode() + sep +
          f"c={cbind},r={cn}{sn},p=".encode())
    write(t, "plus_wrong_hash", bytes([2 | 8 | 16]) + hdr + f"n=,r={cn}".encode() + sep +
          f"c={base64.b64encode(hdr + bytes(32)).decode()},r={cn}{sn},p=".encode())
    write(t, "plus_offered_y_downgrade", bytes([2 | 8 | 32]) + f"y,,n=,r={cn}".encode() + sep +
          f"c=eSws,r={cn}{sn},p=".encode())
    write(t, "plus_offered_n", bytes([2 | 8]) + f"n,,n=,r={cn}".encode() + sep + f"c=biws,r={cn}{sn},p=".encode())
    write(t, "plus_not_offered", bytes([16]) + hdr + f"n=,r={cn}".encode() + sep + b"")
    write(t, "plus_chosen_without_binding", bytes([8 | 16]) + f"n,,n=,r={cn}".encode() + sep + b"")


def scram_client_seeds():
    t = "scram_client"
    sep = b"\n--\n"
    cn = "fuzzClientNonce"
    salt = b64(b"saltsaltsaltsalt")
    write(t, "ok_auto_sig", b"\x02" + f"r={cn}3rfcNHYJY1ZVvWVs7j,s={salt},i=4096".encode() + sep + b"v=")
    write(t, "ok_password_auto_sig", b"\x03" + f"r={cn}XYZ,s={salt},i=16".encode() + sep + b"v=")
    write(t, "ok_ext", b"\x02" + f"r={cn}abc,s={salt},i=4096,x=1".encode() + sep + b"v=")
    write(t, "server_error", b"\x00" + f"r={cn}3rfc,s={salt},i=4096".encode() + sep + b"e=invalid-proof")
    write(t, "wrong_sig", b"\x00" + f"r={cn}3rfc,s={salt},i=4096".encode() + sep +
          b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    write(t, "mandatory_ext", b"\x00" + b"m=x,r=" + cn.encode() + b"1,s=" + salt.encode() + b",i=1" + sep)
    write(t, "nonce_not_ours", b"\x00" + f"r=other,s={salt},i=4096".encode() + sep + b"v=")
    write(t, "huge_iterations", b"\x01" + f"r={cn}q,s={salt},i=99999999".encode() + sep + b"v=")


def base64_saslprep_seeds():
    t = "base64_saslprep"
    write(t, "decode", b"\x00" + b"c2FsdHNhbHRzYWx0c2FsdA==")
    write(t, "decode_pad1", b"\x00" + b"YWI=")
    write(t, "decode_lowbits", b"\x00" + b"YWJ=")
    write(t, "encode", b"\x01" + bytes(range(0, 40)))
    write(t, "saslprep_ascii", b"\x02" + b"pencil")
    write(t, "saslprep_latin", b"\x02" + "p\u00e4ssw\u00f6rd\u00a0x\u00ad".encode())
    write(t, "saslprep_cyrillic_greek", b"\x02" + "\u043f\u0430\u0440\u043e\u043b\u044c\u03b1\u03b2".encode())
    write(t, "saslprep_invalid_utf8", b"\x02" + b"ab\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80")
    write(t, "saslprep_nothing_left", b"\x02" + "\u200b\u00ad\ufeff".encode())
    write(t, "scram_secret", b"\x03" + b"SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$"
          b"c3RvcmVka2V5c3RvcmVka2V5c3RvcmVka2V5c3RvcmU=:c2VydmVya2V5c2VydmVya2V5c2VydmVya2V5c2VydmU=")
    write(t, "md5_hash", b"\x04" + b"md5a1b2c3d4e5f60718293a4b5c6d7e8f90")
    write(t, "md5_plain", b"\x04" + b"plain secret")


GUIDE_INI = """; The configuration from the product guide
[databases]
appdb = host=10.0.0.5 port=5433 dbname=app_production
reports = host=/var/run/postgresql dbname=reports pool_size=10 pool_mode=session
q1 = host=db password='it\\'s a \\\\ secret' connect_query='SELECT 1; SELECT ''two'''
* = host=fallback port=5999

[users]
alice = pool_mode=statement max_user_connections=3

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
auth_type = scram-sha-256
auth_file = ${FUZZ_DIR}/users.txt
pool_mode = transaction
max_client_conn = 200          # Maximum client connections
default_pool_size = 25         ; Connections per database/user
server_lifetime = 3600
server_idle_timeout = 10min
query_wait_timeout = 120.5
unix_socket_mode = 0777
server_reset_query = DISCARD ALL  # Clean connection state
ignore_startup_parameters = extra_float_digits,search_path
max_prepared_statements = 100
http_port = 8081
%include ${FUZZ_DIR}/inc.ini
"""

INC_INI = """[databases]
included = host=127.0.0.1 port=5432 user=bob password=secret
[pgbouncer]
verbose = 1
"""

USERLIST = """; auth_file: plain, md5 and SCRAM entries
"alice" "plain secret"
"bob" "md5a1b2c3d4e5f60718293a4b5c6d7e8f90"
"carol" "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$c3RvcmVka2V5c3RvcmVka2V5c3RvcmVka2V5c3RvcmU=:c2VydmVya2V5c2VydmVya2V5c2VydmVya2V5c2VydmU="
"dave ""the quote"" jones" "pa""ss"
  "eve"	"tab separated"   trailing junk is ignored
"alice" "the later line wins"
"""


def config_seeds():
    t = "config"
    write(t, "guide", GUIDE_INI.encode() + b"\0\0" + INC_INI.encode() + b"\0\0" + USERLIST.encode())
    write(t, "include_loop", b"[pgbouncer]\nauth_type = trust\n%include ${FUZZ_DIR}/inc.ini\n\0\0"
          b"[databases]\nx = host=h\n%include ${FUZZ_DIR}/main.ini\n")
    write(t, "minimal_trust", b"[pgbouncer]\nauth_type = trust\n")
    write(t, "bom_and_peers", b"\xef\xbb\xbf[pgsluice]\nauth_type = md5\nauth_file = ${FUZZ_DIR}/users.txt\n"
          b"[peers]\n1 = host=x\n\0\0\0\0\"u\" \"md5a1b2c3d4e5f60718293a4b5c6d7e8f90\"\n")
    write(t, "errors", b"[pgbouncer]\nnot a pair\n")


def connstr_seeds():
    t = "connstr"
    write(t, "raw", b"\x00\x00" + b"host=db port=5433 password='it\\'s a \\\\ secret' x=''")
    write(t, "db", b"\x01\x00" + b"host=10.0.0.5 port=5433 dbname=app pool_size=10 pool_mode=session "
          b"connect_query='SELECT 1; SELECT ''two''' application_name='' reserve_pool=3")
    write(t, "db_ignored_key", b"\x01\x00" + b"host=h auth_dbname=x")
    write(t, "user", b"\x02\x00" + b"pool_mode=transaction max_user_connections=5")
    for i in range(0, 64, 4):
        write(t, f"setting_{i}", bytes([3, i]) + b"  30 ")
    write(t, "setting_time", bytes([3, 7]) + b"2.5min")
    write(t, "setting_octal", bytes([3, 3]) + b"0755")


def userlist_seeds():
    t = "userlist"
    write(t, "fixture", USERLIST)
    write(t, "unterminated", b'"alice" "secret\n')
    write(t, "empty_name", b'"" "x"\n')


def admin_parse_seeds():
    t = "admin_parse"
    for name, q in [
        ("show_pools", "SHOW POOLS;"),
        ("several", "show stats; show servers;;SHOW clients"),
        ("set", "SET default_pool_size = 30"),
        ("set_to_string", "set server_reset_query to 'DISCARD ALL'"),
        ("set_ident", 'SET "max_client_conn" = "100"'),
        ("comments", "/* c */ SHOW -- x\nCLIENTS; -- end"),
        ("pause", "PAUSE appdb; RESUME appdb"),
        ("quoted_semicolon", "SET server_check_query = 'select 1; select 2'; SHOW CONFIG"),
        ("show_fake_param", "SHOW server_version"),
        ("begin_commit", "BEGIN; COMMIT"),
        ("unknown", "SELECT 1"),
    ]:
        write(t, name, b"\x00" + q.encode())
    write(t, "binary_formats", b"\x01\x00\x01" + b"SHOW STATS")
    write(t, "per_column_formats", b"\x03\x00\x00\x00\x01\x00\x02" + b"SHOW LISTS")


def snapshot(npools, ndbs, names=()):
    """Bytes for fuzz_http's fuzzed snapshot: wall clock, run state, workers, pools, databases."""
    def s(x):
        x = x.encode() if isinstance(x, str) else x
        return bytes([len(x)]) + x
    out = struct.pack("!HHH", 0x6750, 0x0000, 1234) + struct.pack("!H", 30) + b"\x00" + b"\x02"
    for w in range(2):
        out += struct.pack("!H", 5 + w) + struct.pack("!QQQ", 100, 2000, 1500000)
    out += struct.pack("!H", 15000) + bytes([npools])
    for i in range(npools):
        db, user = names[i] if i < len(names) else ("appdb", "alice")
        out += s(db) + s(user) + b"\x01" + struct.pack("!H", 3) + bytes([1, 20, 3, 1, 0, 20, 5, 50])
        out += struct.pack("!HH", 12, 34) + b"\x04" + struct.pack("!H", 5) + s("password authentication failed")
        out += b"\x07" + struct.pack("!Q", 12345)
    out += bytes([ndbs])
    for i in range(ndbs):
        db = names[i][0] if i < len(names) else "appdb"
        out += s(db) + b"\x01" + s("10.0.0.5") + struct.pack("!H", 5432) + b"\x01" + s("connection refused")
        out += b"\x00" + struct.pack("!H", 77) + bytes(range(SL_HIST_BUCKETS * 3))
    return out


SL_HIST_BUCKETS = 18


def http_seeds():
    t = "http"
    snap = snapshot(2, 2)
    for name, method, url in [("health", "GET", "/health"), ("root", "GET", "/"), ("live", "GET", "/live"),
                              ("ready", "HEAD", "/ready"), ("metrics", "GET", "/metrics"), ("pools", "GET", "/pools"),
                              ("stats", "GET", "/stats"), ("post", "POST", "/health"), ("missing", "GET", "/nope")]:
        write(t, name, b"\x00" + cstr(method) + cstr(url) + cstr("") + cstr("") + cstr("") + cstr("") + snap)
    write(t, "token_ok", b"\x01" + cstr("GET") + cstr("/pools") + cstr("Bearer s3cret") + cstr("s3cret") + cstr("")
          + cstr("") + snap)
    write(t, "token_wrong", b"\x01" + cstr("GET") + cstr("/pools") + cstr("bearer s3cre") + cstr("s3cret") + cstr("")
          + cstr("") + snap)
    write(t, "token_missing", b"\x00" + cstr("GET") + cstr("/metrics") + cstr("") + cstr("tok") + cstr("") + cstr("")
          + snap)
    write(t, "thresholds", b"\x00" + cstr("GET") + cstr("/health") + cstr("") + cstr("") + cstr("0.05") + cstr("0")
          + snapshot(3, 3))
    odd = [('we"ird\\db', "us\ner"), ("caf\u00e9", "\u043f\u043e\u043b\u044c\u0437"), ("db\x01\x7f", "u")]
    write(t, "odd_names", b"\x00" + cstr("GET") + cstr("/health") + cstr("") + cstr("") + cstr("nan") + cstr("inf")
          + snapshot(3, 3, odd))
    write(t, "latin1_name", b"\x00" + cstr("GET") + cstr("/stats") + cstr("") + cstr("") + cstr("") + cstr("")
          + snapshot(1, 1, [(b"caf\xe9", "u")]))


def client_login_seeds():
    t = "client_login"
    # config index (fuzz_client_login.c configs[]): 0 plain/"secret", 1 md5/hash, 2 scram/secret,
    # 3 md5/secret (SCRAM), 4 plain/secret, 5 trust, 6 md5/plain, 7 plain/md5 hash; 8-11 with TLS, 12-13 auth_type hba
    console = [("user", "fuzz"), ("database", "pgbouncer"), ("application_name", "psql"),
               ("client_encoding", "UTF8")]
    cf = b"n,,n=,r=rOprNGfwEbeRWgbNEkqO"
    sasl_initial = msg("p", cstr("SCRAM-SHA-256") + struct.pack("!I", len(cf)) + cf)
    sasl_final = msg("p", b"c=biws,r=rOprNGfwEbeRWgbNEkqOxxxxxxxxxxxxxxxxxxxxxxxx,p=" +
                     b"dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    write(t, "trust_console", bytes([5, 0]) + startup(console) + query("SHOW POOLS"))
    write(t, "plain_right_password", bytes([0, 0]) + startup(console) + msg("p", cstr("secret")))
    write(t, "plain_wrong_password", bytes([0, 0]) + startup(console) + msg("p", cstr("wrong")))
    write(t, "plain_against_scram_secret", bytes([4, 0]) + startup(console) + msg("p", cstr("secret")))
    write(t, "plain_against_md5_hash", bytes([7, 0]) + startup(console) + msg("p", cstr("secret")))
    write(t, "md5_answer", bytes([1, 0]) + startup(console) + msg("p", cstr("md5" + "0" * 32)))
    write(t, "md5_plain_stored", bytes([6, 0]) + startup(console) + msg("p", cstr("md5" + "1" * 32)))
    write(t, "scram_exchange", bytes([2, 0]) + startup(console) + sasl_initial + sasl_final)
    write(t, "scram_via_md5", bytes([3, 0]) + startup(console) + sasl_initial + sasl_final)
    write(t, "scram_byte_by_byte", bytes([2, 1]) + startup(console) + sasl_initial + sasl_final)
    write(t, "scram_wrong_mechanism", bytes([2, 0]) + startup(console) +
          msg("p", cstr("SCRAM-SHA-256-PLUS") + struct.pack("!I", len(cf)) + cf))
    write(t, "scram_no_data", bytes([2, 0]) + startup(console) + msg("p", cstr("SCRAM-SHA-256") + b"\xff" * 4))
    write(t, "ssl_then_startup", bytes([5, 3]) + SSL_REQUEST + GSSENC_REQUEST + startup(console))
    write(t, "cancel", bytes([0, 0]) + CANCEL)
    write(t, "unknown_database", bytes([0, 0]) + startup(PSQL))
    write(t, "unsupported_parameter", bytes([5, 0]) + startup(console + [("search_path", "x")]))
    write(t, "ignored_parameter", bytes([5, 0]) + startup(console + [("extra_float_digits", "3")]))
    write(t, "terminate_during_auth", bytes([0, 0]) + startup(console) + msg("X"))
    write(t, "not_a_password_message", bytes([0, 0]) + startup(console) + query("SELECT 1"))
    write(t, "no_user", bytes([5, 0]) + startup([("database", "pgbouncer")]))
    write(t, "bad_length", bytes([0, 0]) + struct.pack("!I", 3) + b"\0\3\0\0")
    # protocol 3.2 and a _pq_ option: NegotiateProtocolVersion before the authentication request
    write(t, "protocol_3_2_pq_option", bytes([5, 0]) + startup(console + [("_pq_.fuzz", "on")], version=196610)
          + query("SHOW POOLS"))
    # TLS configs: 8 plain + prefer (the harness sends SSLRequest and does the handshake), 9 scram +
    # require (direct TLS), 10 trust + require spoken to in plaintext, 11 md5 + allow (SSLRequest)
    write(t, "tls_plain_right_password", bytes([8, 0]) + startup(console) + msg("p", cstr("secret")))
    write(t, "tls_plain_in_pieces", bytes([8, 7]) + startup(console) + msg("p", cstr("wrong")))
    write(t, "tls_direct_scram_exchange", bytes([9, 0]) + startup(console) + sasl_initial + sasl_final)
    write(t, "tls_required_plaintext", bytes([10, 0]) + startup(console))
    write(t, "tls_required_ssl_request_then_garbage", bytes([10, 0]) + SSL_REQUEST + startup(console))
    write(t, "tls_direct_hello_garbage", bytes([10, 0]) + b"\x16\x03\x01\x00\x05hello")
    # 12 hba over TLS (SCRAM), 13 hba in plaintext (cleartext password; other users rejected)
    write(t, "hba_tls_scram", bytes([12, 0]) + startup(console) + sasl_initial + sasl_final)
    write(t, "hba_plain_password", bytes([13, 0]) + startup(console) + msg("p", cstr("secret")))
    write(t, "hba_rejected_user", bytes([13, 0]) + startup([("user", "other"), ("database", "pgbouncer")]))
    write(t, "hba_options", bytes([13, 0]) + startup(console + [("options", "-c search-path=x --DateStyle=ISO")])
          + msg("p", cstr("secret")))
    write(t, "tls_second_ssl_request", bytes([11, 0]) + SSL_REQUEST + startup(console) + msg("p", cstr("md5" + "0" * 32)))


# fuzz_extended_protocol ops (see its LLVMFuzzerTestOneInput); the texts in its order: the first
# 6 / 10 without session-state tracking, all of them with it
NAMES = {"": 0, "s1": 1, "s2": 2, "s3": 3}
PTEXTS = ["SELECT 1", "SELECT 2", "SELECT $1::int", "SELECT 1/0", "SET x.y = 1", "SELEC 1",
          "SET search_path = a", "SET work_mem = '8MB'", "CREATE TEMP TABLE t (a int)", "PREPARE q AS SELECT 1",
          "SELECT pg_advisory_lock(1)", "SHOW search_path", "BEGIN", "COMMIT", "ROLLBACK", "RESET ALL",
          "DISCARD TEMP", "SELECT pg_advisory_unlock_all()", "SET application_name = 'x'"]
QTEXTS = ["SELECT 1", "BEGIN", "COMMIT", "ROLLBACK", "SELECT 1/0", "DISCARD ALL", "discard all", "DEALLOCATE ALL",
          "SELEC 1", " DISCARD ALL;",
          "SET search_path = a", 'SET search_path TO "B", public', "RESET search_path", "SHOW search_path",
          "SET application_name = 'x'", "SET work_mem = '8MB'", "RESET ALL", "CREATE TEMP TABLE t (a int)",
          "SELECT * FROM t", "DISCARD TEMP", "PREPARE q AS SELECT 1", "EXECUTE q", "DEALLOCATE q",
          "SELECT pg_advisory_lock(1)", "SELECT pg_advisory_unlock_all()", "LISTEN ch", "UNLISTEN *",
          'SET search_path TO "B", public; SELECT 1/0', "SAVEPOINT sp", "ROLLBACK TO sp"]
PTEXT = {t: i for i, t in enumerate(PTEXTS)}
QTEXT = {t: i for i, t in enumerate(QTEXTS)}
PLAIN_PTEXTS = 6  # how many a run without session-state tracking picks from


def op_parse(name, text, typed=False, sess=False):
    return bytes([0, 0, NAMES[name], PTEXT[text] + ((len(PTEXTS) if sess else PLAIN_PTEXTS) if typed else 0)])


def op_bind(name, portal="", param=False, binary=False):
    return bytes([0, 1, NAMES[name], (portal == "p1") | (param << 1) | (binary << 2)])


def op_describe_stmt(name):
    return bytes([0, 2, NAMES[name], 0])


def op_describe_portal(portal=""):
    return bytes([0, 2, portal == "p1", 1])


def op_execute(portal=""):
    return bytes([0, 3, 0, portal == "p1"])


def op_close_stmt(name):
    return bytes([0, 4, NAMES[name], 0])


def op_close_portal(portal=""):
    return bytes([0, 4, portal == "p1", 1])


OP_SYNC = bytes([0, 5, 0, 0])
OP_FLUSH = bytes([0, 6, 0, 0])


def op_query(q):
    return bytes([0, 7, 0, QTEXT[q]])


def op_send(n=0):
    return bytes([2, n])


def op_answer(n=0):
    return bytes([3, n])


def op_next_server(i):
    return bytes([4, i])


def op_reset_server(i):
    return bytes([5, i])


def extended_protocol_seeds():
    t = "extended_protocol"
    big, small = b"\x01", b"\x00"  # max_prepared_statements 100 / 2
    round_trip = op_send() + op_answer()
    pgbench = (op_parse("s1", "SELECT $1::int", typed=True) + op_bind("s1", param=True) + op_describe_portal()
               + op_execute() + OP_SYNC + round_trip)
    pgbench_again = op_bind("s1", param=True) + op_describe_portal() + op_execute() + OP_SYNC + round_trip
    write(t, "pgbench_prepared", big + pgbench + op_next_server(1) + pgbench_again + op_next_server(0) + pgbench_again)
    write(t, "pgbench_fresh_server", big + pgbench + op_reset_server(0) + pgbench_again)
    write(t, "asyncpg_style", big + op_parse("s2", "SELECT 1") + op_describe_stmt("s2") + OP_SYNC + round_trip
          + op_bind("s2", binary=True) + op_execute() + OP_SYNC + round_trip + op_close_stmt("s2") + OP_SYNC
          + round_trip)
    write(t, "psycopg_unnamed", big + op_parse("", "SELECT $1::int") + op_bind("", param=True)
          + op_describe_portal() + op_execute() + OP_SYNC + round_trip)
    write(t, "duplicate_name", big + op_parse("s1", "SELECT 1") + OP_SYNC + round_trip + op_parse("s1", "SELECT 2")
          + op_bind("s1") + op_execute() + OP_SYNC + round_trip + op_bind("s1") + op_execute() + OP_SYNC + round_trip)
    write(t, "syntax_error_skips_to_sync", big + op_parse("s1", "SELEC 1") + op_bind("s1") + op_execute() + OP_SYNC
          + round_trip + op_parse("s1", "SELECT 1") + OP_SYNC + round_trip)
    write(t, "error_in_transaction", big + op_query("BEGIN") + round_trip + op_parse("s1", "SELECT 1/0")
          + op_bind("s1") + op_execute() + OP_SYNC + round_trip + op_query("SELECT 1") + round_trip
          + op_query("ROLLBACK") + round_trip + op_bind("s1") + op_execute() + OP_SYNC + round_trip)
    write(t, "discard_all", big + op_parse("s1", "SELECT 1") + OP_SYNC + round_trip + op_query("DISCARD ALL")
          + round_trip + op_bind("s1") + op_execute() + OP_SYNC + round_trip)
    write(t, "deallocate_all_other_server", big + op_parse("s1", "SELECT 1") + OP_SYNC + round_trip
          + op_next_server(1) + op_query("DEALLOCATE ALL") + round_trip + op_next_server(0) + op_bind("s1")
          + op_execute() + OP_SYNC + round_trip)
    write(t, "eviction", small + op_parse("s1", "SELECT 1") + op_parse("s2", "SELECT 2") + op_parse("s3", "SET x.y = 1")
          + op_bind("s1") + op_execute() + op_bind("s2") + op_execute() + op_bind("s3") + op_execute() + OP_SYNC
          + round_trip + op_bind("s1") + op_execute() + OP_SYNC + round_trip)
    write(t, "close_then_bind", big + op_parse("s1", "SELECT 1") + OP_SYNC + round_trip + op_close_stmt("s1")
          + OP_SYNC + round_trip + op_bind("s1") + OP_SYNC + round_trip)
    write(t, "local_answers_between_transactions", big + op_parse("s1", "SELECT 1") + OP_SYNC + round_trip
          + op_close_stmt("s1") + op_parse("s1", "SELECT 1") + OP_FLUSH + OP_SYNC + op_send()
          + op_bind("s1") + op_execute() + OP_SYNC + round_trip)
    write(t, "answers_in_small_pieces", big + pgbench[:-4] + op_send() + op_answer(7) * 20 + op_answer())
    write(t, "client_bytes_in_pieces", big + op_parse("s1", "SELECT 1") + op_bind("s1") + op_execute() + OP_SYNC
          + op_send(3) * 12 + op_send() + op_answer())
    write(t, "portal_named", big + op_query("BEGIN") + round_trip + op_parse("s1", "SELECT 2")
          + op_bind("s1", portal="p1") + op_describe_portal("p1") + op_execute("p1") + op_close_portal("p1")
          + OP_SYNC + round_trip + op_query("COMMIT") + round_trip)
    write(t, "discard_all_in_transaction", big + op_parse("s1", "SELECT 1") + OP_SYNC + round_trip
          + op_query("BEGIN") + round_trip + op_query("DISCARD ALL") + round_trip + op_query("ROLLBACK")
          + round_trip + op_bind("s1") + op_execute() + OP_SYNC + round_trip)
    write(t, "raw_client_bytes", big + bytes([6, 9]) + msg("P", b"\0\0\0") + op_send() + op_answer())
    extended_protocol_session_seeds()


def extended_protocol_session_seeds():
    """The first byte: bit 0 max_prepared_statements 100, bit 1 session-state tracking (as in
    production), bits 2-3 pin_session_state (1 off, 2 error, else on)."""
    t = "extended_protocol"
    on, off, error = b"\x03", b"\x07", b"\x0b"
    rt = op_send() + op_answer()

    def q(text):
        return op_query(text) + rt

    def unnamed(text):  # psycopg/asyncpg style: one statement through the unnamed statement
        return op_parse("", text, sess=True) + op_bind("") + op_execute() + OP_SYNC + rt

    write(t, "sess_set_tracked_other_server", on + q("SET search_path = a") + op_next_server(1) + q("SHOW search_path")
          + q("RESET search_path") + op_next_server(0) + q("SHOW search_path"))
    write(t, "sess_set_in_failed_transaction", on + q("BEGIN") + q('SET search_path TO "B", public') + q("SELECT 1/0")
          + q("ROLLBACK") + op_next_server(1) + q("SHOW search_path"))
    write(t, "sess_set_then_error_in_one_query", on + q('SET search_path TO "B", public; SELECT 1/0')
          + op_next_server(1) + q("SHOW search_path"))
    write(t, "sess_savepoint", on + q("BEGIN") + q("SET search_path = a") + q("SAVEPOINT sp")
          + q('SET search_path TO "B", public') + q("ROLLBACK TO sp") + q("COMMIT") + op_next_server(1)
          + q("SHOW search_path"))
    write(t, "sess_temp_table_pins", on + q("CREATE TEMP TABLE t (a int)") + op_next_server(1) + q("SELECT * FROM t")
          + q("DISCARD TEMP") + q("SELECT * FROM t") + q("SELECT 1"))
    write(t, "sess_prepare_pins", on + q("PREPARE q AS SELECT 1") + op_next_server(1) + q("EXECUTE q")
          + q("DEALLOCATE q") + q("EXECUTE q") + q("SELECT 1"))
    write(t, "sess_advisory_lock", on + q("SELECT pg_advisory_lock(1)") + op_next_server(1) + q("SELECT 1")
          + q("SELECT pg_advisory_unlock_all()") + q("SELECT 1"))
    write(t, "sess_listen", on + q("LISTEN ch") + op_next_server(1) + q("SELECT 1") + q("UNLISTEN *") + q("SELECT 1"))
    write(t, "sess_untracked_setting_reset_all", on + q("SET work_mem = '8MB'") + op_next_server(1) + q("SELECT 1")
          + q("RESET ALL") + q("SELECT 1"))
    write(t, "sess_application_name", on + q("BEGIN") + q("SET application_name = 'x'") + q("COMMIT")
          + op_next_server(1) + q("SELECT 1") + q("BEGIN") + q("RESET ALL") + q("ROLLBACK"))
    write(t, "sess_extended_unnamed", on + unnamed("SET search_path = a") + op_next_server(1)
          + unnamed("SHOW search_path") + unnamed("BEGIN") + unnamed("CREATE TEMP TABLE t (a int)")
          + unnamed("ROLLBACK") + unnamed("DISCARD TEMP") + unnamed("SELECT 1"))
    write(t, "sess_extended_named_set_pins", on + op_parse("s1", "SET search_path = a", sess=True) + op_bind("s1")
          + op_execute() + OP_SYNC + rt + op_next_server(1) + q("SELECT 1") + q("RESET ALL") + q("SHOW search_path"))
    write(t, "sess_extended_pipeline", on + op_parse("", "BEGIN", sess=True) + op_bind("") + op_execute()
          + op_parse("s2", "SET search_path = a", sess=True) + op_bind("s2") + op_execute()
          + op_parse("", "COMMIT", sess=True) + op_bind("") + op_execute() + OP_SYNC + rt + q("SHOW search_path"))
    write(t, "sess_pin_error_refusals", error + q("CREATE TEMP TABLE t (a int)") + q("SET search_path = a")
          + op_parse("s1", "CREATE TEMP TABLE t (a int)", sess=True) + op_bind("s1") + op_execute() + OP_SYNC + rt
          + op_next_server(1) + q("SHOW search_path") + q("SELECT * FROM t"))
    write(t, "sess_pin_off", off + q("SET search_path = a") + op_next_server(1) + q("SHOW search_path")
          + unnamed("SELECT 1"))
    # each message sent as it is built, answered in pieces
    write(t, "sess_pieces", on + op_query("BEGIN") + op_query("SET search_path = a") + op_query("COMMIT")
          + op_send(3) * 20 + op_answer(5) * 30 + op_answer())


def hba_seeds():
    """fuzz_hba: flags, 16 address bytes, database/user/map/system user, hba text, NUL, ident text."""
    t = "hba"
    hba = (b"# TYPE DATABASE USER ADDRESS METHOD\n"
           b"local all postgres peer\n"
           b"local sameuser all peer map=localusers\n"
           b"host \"all\" \"all\" 10.2.0.0 255.255.0.0 md5 # quoted keywords are names\n"
           b"hostssl app,\"my db\" alice, bob 2001:db8::/32 \\\n        cert clientcert=verify-full map=certs\n"
           b"hostnossl replication all 127.0.0.1/32 scram-sha-256\n"
           b"host all /^svc_.*$ 192.168.0.0/16 pam pamservice=pgsluice\n"
           b"host all all ::1/128 ldap ldapserver=ldap.example.net ldapprefix=\"uid=\" ldapsuffix=\",dc=example,dc=net\"\n"
           b"host all all samenet ldap ldapurl=\"ldap://ldap.example.net/dc=example,dc=net?uid?sub\"\n"
           b"host all all all reject\n")
    ident = (b"# MAPNAME SYSTEM-USERNAME PG-USERNAME\n"
             b"localusers root postgres\n"
             b"localusers /^(.*)$ \\1\n"
             b"certs alice.example.com alice\n"
             b"certs /^(.*)@example\\.com$ \\1\n")

    def names(db, user, m, sysuser):
        return b"\0".join(x.encode() for x in (db, user, m, sysuser)) + b"\0"

    v4 = bytes([10, 2, 3, 4]) + bytes(12)
    v6 = bytes.fromhex("20010db8000000000000000000000001")
    write(t, "unix_peer", bytes([1]) + bytes(16) + names("app", "postgres", "localusers", "root") + hba + b"\0" + ident)
    write(t, "tcp_md5", bytes([0]) + v4 + names("app", "bob", "", "bob") + hba + b"\0" + ident)
    write(t, "tls_cert_v6", bytes([2 | 8]) + v6 + names("my db", "alice", "certs", "alice@example.com") + hba + b"\0" + ident)
    write(t, "replication", bytes([4]) + bytes([127, 0, 0, 1]) + bytes(12) + names("replication", "rep", "", "x") + hba)
    write(t, "refused_include", bytes([0]) + v4 + names("a", "b", "", "") + b"include other.conf\n")
    write(t, "refused_at_file", bytes([0]) + v4 + names("a", "b", "", "") + b"host @dbs.txt all all trust\n")
    write(t, "refused_ident_group", bytes([1]) + bytes(16) + names("a", "b", "m", "b") + b"local all all peer map=m\n\0"
          + b"m b +admins\n")


def server_login_seeds():
    """What PostgreSQL (or something pretending) answers pgsluice's startup packet: a database byte
    (0 cleartext password known, 1 its md5 hash, 2 SCRAM keys only), a chunk byte, the bytes."""
    t = "server_login"

    def auth(code, extra=b""):
        return msg("R", struct.pack("!I", code) + extra)
    params = b"".join(msg("S", cstr(k) + cstr(v)) for k, v in (
        ("server_version", "15.4"), ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
        ("TimeZone", "UTC"), ("integer_datetimes", "on"), ("standard_conforming_strings", "on"),
        ("in_hot_standby", "off"), ("application_name", "")))
    welcome = auth(0) + params + msg("K", struct.pack("!II", 4242, 0xdeadbeef)) + msg("Z", b"I")
    sasl = auth(10, cstr("SCRAM-SHA-256") + b"\0")
    sasl_plus = auth(10, cstr("SCRAM-SHA-256-PLUS") + cstr("SCRAM-SHA-256") + b"\0")
    first = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=16"
    final = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    fatal = msg("E", cstr("SFATAL") + cstr("VFATAL") + cstr("C28P01") +
                cstr('Mpassword authentication failed for user "fuzz"') + b"\0")
    for db in (0, 1, 2):
        write(t, "trust_%d" % db, bytes([db, 0]) + welcome)
        write(t, "cleartext_%d" % db, bytes([db, 0]) + auth(3) + welcome)
        write(t, "md5_%d" % db, bytes([db, 0]) + auth(5, b"\x01\x02\x03\x04") + welcome)
        write(t, "scram_%d" % db, bytes([db, 0]) + sasl + auth(11, first) + auth(12, final) + welcome)
        write(t, "scram_plus_offered_%d" % db, bytes([db, 0]) + sasl_plus + auth(11, first) + auth(12, final) + welcome)
        write(t, "scram_skipped_%d" % db, bytes([db, 0]) + sasl + welcome)
        write(t, "refused_%d" % db, bytes([db, 0]) + auth(5, b"salt") + fatal)
    write(t, "negotiate_version", b"\0\0" + msg("v", struct.pack("!II", 196608, 1) + cstr("_pq_.x")) + welcome)
    write(t, "notice_first", b"\0\0" + msg("N", cstr("SWARNING") + cstr("C01000") + cstr("Mhello") + b"\0") + welcome)
    write(t, "gss_asked", b"\0\0" + auth(7))
    write(t, "sspi_asked", b"\0\0" + auth(9))
    write(t, "sasl_continue_unasked", b"\0\0" + auth(11, first))
    write(t, "sasl_no_mechanism", b"\0\0" + auth(10, cstr("SCRAM-SHA-1") + b"\0"))
    write(t, "bad_length", b"\0\0R\0\0\0\x03\0\0\0\0")
    write(t, "huge_length", b"\0\0R\xff\xff\xff\xff\0\0\0\0")
    write(t, "bytewise", b"\0\x01" + auth(5, b"abcd") + welcome)
    write(t, "split_3", b"\x02\x03" + sasl + auth(11, first) + welcome)
    write(t, "ready_without_auth", b"\0\0" + msg("Z", b"I"))
    write(t, "startup_error", b"\0\0" + msg("E", cstr("SFATAL") + cstr("C57P03") + cstr("Mthe database system is starting up") + b"\0"))


def main():
    startup_seeds()
    scram_server_seeds()
    scram_client_seeds()
    base64_saslprep_seeds()
    config_seeds()
    connstr_seeds()
    userlist_seeds()
    admin_parse_seeds()
    http_seeds()
    client_login_seeds()
    server_login_seeds()
    extended_protocol_seeds()
    hba_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())
