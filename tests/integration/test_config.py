"""Configuration: the product guide's settings, reloads with SIGHUP."""
import re

import pytest

from harness import clients
from harness.pooler import GUIDE_BLOCKS


def _guide_settings_without_comments():
    s = {}
    for line in GUIDE_BLOCKS.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            s[k.strip()] = re.sub(r"\s+#.*$", "", v).strip()
    return s


@pytest.mark.core
@pytest.mark.pgsluice_only  # PgBouncer 1.18 rejects trailing "# comment"s: invalid value "200   # Max..."
def test_product_guide_config_as_written_loads_and_serves(pooler):
    p = pooler(verbatim=GUIDE_BLOCKS)
    for _ in range(3):
        clients.assert_pooler_serves(p)
    with clients.connect(p, "sav3") as c:
        assert c.execute("SELECT current_database()").fetchone() == ("sav3",)


def test_product_guide_settings_load_and_serve(pooler):
    s = _guide_settings_without_comments()
    assert s["max_client_conn"] == "200" and s["server_reset_query"] == "DISCARD ALL"
    p = pooler(s)
    clients.assert_pooler_serves(p)
    with clients.connect(p, "sav3", autocommit=False) as c:
        c.execute("SET search_path = public")
        assert c.execute("SELECT current_database()").fetchone() == ("sav3",)
        c.commit()


@pytest.mark.core
def test_sighup_with_broken_config_keeps_serving(pooler):
    p = pooler()
    p.reload(extra_lines=["default_pool_size = banana"])
    assert p.alive(), p.describe()
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only  # PgBouncer applies the valid lines of a broken file (pool_mode changes)
def test_sighup_with_broken_config_keeps_the_old_config(pooler):
    p = pooler({"pool_mode": "transaction"})
    p.reload({"pool_mode": "statement"}, extra_lines=["default_pool_size = banana"])
    assert p.alive(), p.describe()
    with clients.connect(p, autocommit=False) as c:  # a transaction would be refused in statement mode
        c.execute("SELECT 1")
        c.execute("SELECT 2")
        c.commit()


def test_sighup_applies_a_valid_config_change(pooler):
    import psycopg
    p = pooler({"pool_mode": "transaction"})
    p.reload({"pool_mode": "statement"})
    with clients.connect(p, autocommit=False) as c:
        with pytest.raises(psycopg.Error):
            c.execute("SELECT 1")
            c.execute("SELECT 2")
            c.commit()
    clients.assert_pooler_serves(p)


@pytest.mark.pgsluice_only
def test_unix_socket_group_is_given_to_the_socket(pooler):
    import grp
    import os
    import stat
    others = [g for g in grp.getgrall() if g.gr_gid != os.getgid()]  # a group the socket would not have anyway
    target = others[0] if others else grp.getgrgid(os.getgid())
    p = pooler({"unix_socket_group": target.gr_name, "unix_socket_mode": "0660"})
    st = os.stat(os.path.join(p.unix_socket_dir, ".s.PGSQL.%d" % p.port))
    assert st.st_gid == target.gr_gid and stat.S_IMODE(st.st_mode) == 0o660
    q = pooler({"unix_socket_group": "no_such_group_sl"}, start=False)
    with pytest.raises(Exception):
        q.start(attempts=1)
    assert 'unix_socket_group: no group named "no_such_group_sl"' in q.log_text()
