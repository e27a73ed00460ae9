"""The options startup parameter (libpq's options, PGOPTIONS): -c settings of tracked parameters act
like startup parameters and follow the client to every server in transaction mode, those listed in
ignore_startup_parameters are dropped, anything else is refused with 08P01 (as PgBouncer 1.22+)."""
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
    # without tracking it the parameter is refused, as before
    q = pooler({"track_extra_parameters": ""})
    with pytest.raises(psycopg.OperationalError, match="parameter cannot be changed: default_transaction_read_only"):
        clients.connect(q, options="-c default_transaction_read_only=on")
