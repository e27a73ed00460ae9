"""conftest.py - fixtures for the integration suite.

  cluster   (session)  a PostgreSQL 15 primary + streaming replica (harness.cluster.Cluster)
  pooler    (function) factory: pooler(settings=None, dbs=None, users=None, user_settings=None,
                       verbatim=None, args=None, start=True) -> a started harness.pooler.Pooler
                       (start=False: configure p.settings first, then p.start()); all are stopped after
                       the test, and the test errors if one crashed, ignored SIGINT or logged a
                       sanitizer report.
  direct    (function) factory: direct(db="postgres") -> superuser psycopg connection to the primary

Plugin: client_matrix.py records the tests marked @pytest.mark.client(...) and writes docs/CLIENTS.md
        after a full run against pgsluice.

Env: POOLER=pgsluice|pgbouncer, SL_BIN, SL_WORKERS, SL_ARGS, SL_KEEP_TMP=1 (keep the temp dir),
     SL_RUN_PGSLUICE_ONLY=1 (run pgsluice_only tests under PgBouncer too, to see them fail).
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pytest  # noqa: E402

import client_matrix  # noqa: E402
from harness import clients  # noqa: E402
from harness.cluster import Cluster  # noqa: E402
from harness.pooler import Pooler, pooler_binary, pooler_kind  # noqa: E402

POOLER = pooler_kind()


def pytest_configure(config):
    # docs/CLIENTS.md: rows are tests marked @pytest.mark.client(...) (client_matrix.py)
    config.pluginmanager.register(client_matrix.ClientMatrix(config, POOLER), "client_matrix")


def pytest_report_header(config):
    return "pooler under test: %s (%s), SL_WORKERS=%s" % (POOLER, pooler_binary(), os.environ.get("SL_WORKERS", "-"))


def pytest_collection_modifyitems(config, items):
    if POOLER != "pgbouncer" or os.environ.get("SL_RUN_PGSLUICE_ONLY"):
        return
    skip = pytest.mark.skip(reason="pgsluice_only: PgBouncer does not behave this way")
    for item in items:
        if "pgsluice_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def session_dir():
    # Short path under /tmp (unix socket paths are limited to 107 bytes), readable by the postgres
    # OS user, which runs the servers and PgBouncer.
    d = tempfile.mkdtemp(prefix="slt-")
    os.chmod(d, 0o755)
    yield d
    if not os.environ.get("SL_KEEP_TMP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(session_dir):
    c = Cluster(os.path.join(session_dir, "pg")).start()
    yield c
    c.stop()


@pytest.fixture
def pooler(cluster, session_dir, request):
    session_cluster = cluster
    made = []
    request.node._sl_poolers = made

    def factory(settings=None, dbs=None, users=None, user_settings=None, verbatim=None, args=None, start=True,
                cluster=None):
        """cluster: another PostgreSQL than the session's (a module's own, e.g. with ssl=on)."""
        p = Pooler(cluster or session_cluster, session_dir, settings=settings, dbs=dbs, users=users,
                   user_settings=user_settings, verbatim=verbatim, args=args)
        made.append(p)
        if start:
            p.start()
        return p

    yield factory
    problems = []
    for p in made:
        p.stop()
        problems += ["%s\n%s" % (prob, p.describe()) for prob in p.stop_problems]
    if problems:
        pytest.fail("pooler problems:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def direct(cluster):
    conns = []

    def factory(db="postgres", port=None):
        c = clients.direct(cluster, db, port)
        conns.append(c)
        return c

    yield factory
    for c in conns:
        c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call"):
        for p in getattr(item, "_sl_poolers", []):
            rep.sections.append(("pooler %s:%d log" % (p.kind, p.port), p.describe()))
        c = item.funcargs.get("cluster") if hasattr(item, "funcargs") else None
        if c is not None and c.primary is not None:
            rep.sections.append(("primary server log tail", c.primary.log_tail(20)))
