"""auth_query: users that auth_file does not list log in with the secret PostgreSQL holds for them,
looked up as auth_user through a SECURITY DEFINER function (PgBouncer's recommended setup), the user
name bound as a parameter, the answer cached for auth_cache_ttl."""
import psycopg
import pytest

from harness import clients

AUTH_USER, AUTH_PW = "sl_authq", "authqpw"
LOOKUP = "SELECT uname, phash FROM sl_auth.user_lookup($1)"


@pytest.fixture(scope="module")
def auth_roles(cluster):
    """The auth user, its lookup function in appdb, and users that only PostgreSQL knows."""
    with clients.direct(cluster, "postgres") as su:
        for stmt in [
            "DROP ROLE IF EXISTS dyn_scram", "DROP ROLE IF EXISTS dyn_expired",
            "DROP ROLE IF EXISTS %s" % AUTH_USER,
            "CREATE ROLE %s LOGIN PASSWORD '%s'" % (AUTH_USER, AUTH_PW),
            "SET password_encryption = 'scram-sha-256'",
            "CREATE ROLE dyn_scram LOGIN PASSWORD 'scrampw'",
            "CREATE ROLE dyn_expired LOGIN PASSWORD 'expiredpw' VALID UNTIL '2001-01-01'",
            "GRANT CONNECT ON DATABASE appdb TO dyn_scram, dyn_expired",
        ]:
            su.execute(stmt)
    with clients.direct(cluster, "appdb") as su:
        su.execute("DROP SCHEMA IF EXISTS sl_auth CASCADE")
        su.execute("CREATE SCHEMA sl_auth")
        su.execute("""
            CREATE FUNCTION sl_auth.user_lookup(i_username text, OUT uname text, OUT phash text)
            RETURNS record AS $$
            BEGIN
                SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END
                  INTO uname, phash FROM pg_catalog.pg_authid WHERE rolname = i_username AND rolcanlogin;
                RETURN;
            END $$ LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog""")
        su.execute("REVOKE ALL ON FUNCTION sl_auth.user_lookup(text) FROM public")
        su.execute("GRANT USAGE ON SCHEMA sl_auth TO %s" % AUTH_USER)
        su.execute("GRANT EXECUTE ON FUNCTION sl_auth.user_lookup(text) TO %s" % AUTH_USER)
    return True


def authq_pooler(pooler, settings=None, users=None):
    s = {"auth_type": "scram-sha-256", "auth_user": AUTH_USER, "auth_query": LOOKUP, "pool_mode": "transaction"}
    s.update(settings or {})
    return pooler(s, users=dict({AUTH_USER: AUTH_PW}, **(users or {})))


def test_a_user_missing_from_auth_file_logs_in_with_the_secret_auth_query_finds(pooler, auth_roles):
    p = authq_pooler(pooler)
    with clients.connect(p, user="dyn_scram", password="scrampw") as c:
        assert c.execute("SELECT current_user").fetchone() == ("dyn_scram",)
    # the server login used the client's SCRAM proof: no password is stored anywhere in pgsluice
    with clients.connect(p, user="dyn_scram", password="scrampw") as c:  # again, from the cache
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_an_md5_secret_found_by_auth_query_logs_in_with_md5(pooler, auth_roles):
    # app_md5's password is stored as md5 (and PostgreSQL lets it log in with md5): taken out of
    # auth_file, its hash comes from auth_query and also logs pgsluice in to the server
    p = authq_pooler(pooler, {"auth_type": "md5"}, users={"app_md5": None})
    with clients.connect(p, user="app_md5", password="md5pw") as c:
        assert c.execute("SELECT current_user").fetchone() == ("app_md5",)


def test_a_wrong_password_and_an_unknown_user_are_refused_alike(pooler, auth_roles):
    p = authq_pooler(pooler)
    wrong = clients.login_error(p, user="dyn_scram", password="nope")
    unknown = clients.login_error(p, user="nobody_at_all", password="nope")
    assert wrong[0] == unknown[0] == "28P01"


def test_an_expired_valid_until_is_refused(pooler, auth_roles):
    p = authq_pooler(pooler)
    assert clients.login_error(p, user="dyn_expired", password="expiredpw")[0] == "28P01"


@pytest.mark.parametrize("name", ["x' OR '1'='1", "dyn_scram'--", "a\"; DROP ROLE sl_authq; --", "dyn_scram%"])
def test_a_user_name_carrying_sql_is_just_a_user_name(pooler, auth_roles, cluster, name):
    p = authq_pooler(pooler)
    assert clients.login_error(p, user=name, password="scrampw")[0] == "28P01"
    with clients.direct(cluster, "postgres") as su:
        assert su.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (AUTH_USER,)).fetchone() == (1,)
    clients.assert_pooler_serves(p)


def test_the_lookup_runs_in_auth_dbname_and_the_default_query_needs_pg_authid(pooler, auth_roles, cluster):
    # the superuser as auth_user with the default query (it reads pg_authid), in another database
    p = pooler({"auth_type": "scram-sha-256", "auth_user": "postgres", "auth_dbname": "postgres",
                "pool_mode": "transaction"}, users={"postgres": cluster.superuser_password})
    with clients.connect(p, db="appdb", user="dyn_scram", password="scrampw") as c:
        assert c.execute("SELECT current_user, current_database()").fetchone() == ("dyn_scram", "appdb")


def test_auth_file_users_never_touch_auth_query(pooler, auth_roles):
    p = authq_pooler(pooler, {"auth_query": "SELECT this is not sql"})
    with clients.connect(p) as c:  # app is in auth_file
        assert c.execute("SELECT current_user").fetchone() == ("app",)
    sqlstate, msg = clients.login_error(p, user="dyn_scram", password="scrampw")
    assert "could not look up the password" in msg
