"""The options startup parameter (libpq's options, PGOPTIONS): -c settings of tracked parameters act
like startup parameters and follow the client to every server in transaction mode, those listed in
ignore_startup_parameters are dropped, anything else is refused with 08P01 (as PgBouncer 1.22+)."""
import struct

import psycopg
import pytest

from harness import clients


def test_a_tracked_parameter_from_options_follows_the_client_across_servers(pooler):
    p = pooler({"default_pool_size": 2})
    with clients.connect(p, options="-c TimeZone=America/New_York --DateStyle=SQL,\\ DMY") as c, \
            clients.connect(p, options="-c timezone=UTC") as other:
        for _ in range(4):  # transaction mode: the servers change hands between the two clients
            assert c.execute("SHOW TimeZone").fetchone() == ("America/New_York",)
            assert c.execute("SHOW DateStyle").fetchone() == ("SQL, DMY",)
            assert other.execute("SHOW TimeZone").fetchone() == ("UTC",)


def test_an_ignored_parameter_in_options_is_dropped(pooler):
    p = pooler({"ignore_startup_parameters": "extra_float_digits,search_path"})
    with clients.connect(p, options="-c search_path=app") as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.pgsluice_only  # the comparison PgBouncer 1.18 refuses options altogether
@pytest.mark.parametrize("options, words", [
    ("-c enable_seqscan=off", "parameter cannot be changed: enable_seqscan"),
    ("-B 100", "only -c name=value and --name=value"),
])
def test_anything_else_in_options_is_refused(pooler, options, words):
    p = pooler()
    with pytest.raises(psycopg.OperationalError, match="unsupported options startup parameter: " + words):
        clients.connect(p, options=options)
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only  # PgBouncer 1.20+ has track_extra_parameters; the comparison build is 1.18
def test_track_extra_parameters_keeps_a_reported_parameter_per_client(pooler):
    p = pooler({"default_pool_size": 1, "track_extra_parameters": "IntervalStyle, default_transaction_read_only"})
    with clients.connect(p, options="-c default_transaction_read_only=on") as ro, clients.connect(p) as rw:
        for _ in range(3):  # one server, handed back and forth
            assert ro.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
            assert rw.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                ro.execute("CREATE TABLE sl_ro_probe (x int)")
    # default_transaction_read_only (and search_path) are tracked by default now, as in PgBouncer 1.26;
    # a parameter that is not tracked is refused, as before
    q = pooler({"track_extra_parameters": ""})
    with clients.connect(q, options="-c default_transaction_read_only=on") as ro:
        assert ro.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    with pytest.raises(psycopg.OperationalError, match="parameter cannot be changed: work_mem"):
        clients.connect(q, options="-c work_mem=2MB")


@pytest.mark.pgsluice_only  # PgBouncer 1.18 predates NegotiateProtocolVersion support
def test_a_newer_minor_version_and_protocol_options_get_negotiate_protocol_version(pooler):
    """libpq 18 asks for protocol 3.2 and may send _pq_ options: the answer is 3.0 and the options
    pgsluice does not know, then the login goes on as usual."""
    p = pooler()
    body = struct.pack("!I", (3 << 16) | 2) + b"user\0app\0database\0appdb\0_pq_.frobnicate\0on\0\0"
    with clients.raw_socket(p) as s:
        s.sendall(struct.pack("!I", len(body) + 4) + body)
        kind, msg = clients.read_message(s)
        assert kind == b"v"
        newest, count = struct.unpack("!II", msg[:8])
        assert newest == 196608 and count == 1 and msg[8:] == b"_pq_.frobnicate\0"
        kind, msg = clients.read_message(s)
        assert kind == b"R"  # and then the password exchange, as with 3.0


@pytest.mark.pgsluice_only  # PgBouncer 1.18 has disable_pqexec too, but its message differs across versions
def test_disable_pqexec_refuses_the_simple_protocol_and_serves_the_extended_one(pooler):
    p = pooler({"disable_pqexec": 1})
    with clients.connect(p) as c:
        # psycopg sends a query with parameters through the extended protocol
        assert c.execute("SELECT %s::int", (5,)).fetchone() == (5,)
        with pytest.raises(psycopg.OperationalError, match="PQexec disallowed"):
            c.execute("SELECT 1; SELECT 2")  # no parameters: the simple protocol
    with psycopg.connect(p.dsn("pgbouncer", "postgres"), autocommit=True) as admin:
        assert admin.execute("SHOW VERSION").fetchone()  # the console only speaks the simple protocol
