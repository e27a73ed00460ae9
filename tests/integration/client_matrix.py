"""client_matrix.py - the driver compatibility matrix: records the result of every test that is a
row of it and writes docs/CLIENTS.md at the end of the run.

A row is a test marked with the client it drives and what it exercises:

    @pytest.mark.client("psycopg2", "COPY in and out with copy_expert")

(`{name}` in the text is replaced by the test's parameter of that name). The first argument must be
a key of CLIENTS below. The row records the test's outcome (pass / FAIL / xfail / skipped, with the
reason), the pool it ran against (pool_mode and default_pool_size of the poolers the `pooler` fixture
started; a module-scoped pooler passes pool="transaction/5" to the marker) and the installed versions.

When docs/CLIENTS.md is written: only when the run is the whole suite against pgsluice (no -k, -m,
--lf, deselection or file selection, every row reached), so `make test`'s first pass regenerates it
and its quick `-m core` pass, `PYTEST_ARGS` subsets and POOLER=pgbouncer runs leave it alone. The
content depends only on the rows, their outcomes and the installed versions (no dates, no commit),
so a run on an unchanged tree and machine rewrites the same bytes; when the content changed, the run
says so at the end ("review and commit it"). The run never fails because of this file.
"""
import json
import os
import re
import shutil
import subprocess
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(REPO, "docs", "CLIENTS.md")
PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
DRIVERS_NODE = os.path.join(REPO, "tests", "drivers", "node_modules")
PRISMA_NODE = os.path.join(REPO, "integrations", "prisma", "node_modules")


def _npm_version(root, package):
    try:
        with open(os.path.join(root, package, "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "not installed"


def _command_version(cmd, pattern=r"(\d+(?:\.\d+)+)"):
    exe = cmd[0] if os.path.isabs(cmd[0]) else shutil.which(cmd[0])
    if not exe or not os.path.exists(exe):
        return "not installed"
    try:
        r = subprocess.run([exe] + cmd[1:], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    m = re.search(pattern, r.stdout + r.stderr)
    return m.group(1) if m else "unknown"


def _python_version(module, attr="__version__"):
    try:
        mod = __import__(module)
    except ImportError:
        return "not installed"
    return str(getattr(mod, attr, "unknown")).split()[0]


def _libpq_version():
    try:
        from psycopg import pq
    except ImportError:
        return "?"
    v = pq.version()
    return "%d.%d" % (v // 10000, v % 100)


def _pgjdbc_version():
    jar = os.environ.get("PGJDBC_JAR", "/usr/share/java/postgresql.jar")
    try:
        with zipfile.ZipFile(jar) as z:
            manifest = z.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return "not installed"
    m = re.search(r"^(?:Implementation-Version|Bundle-Version):\s*(\S+)", manifest, re.M)
    return m.group(1) if m else "unknown"


def _node():
    return "node " + _command_version(["node", "--version"])


# key -> (name in the doc, how it is installed, version function). The doc lists clients in this order.
CLIENTS = {
    "prisma": ("Prisma ORM 7 (`integrations/prisma`)", "npm: integrations/prisma/package-lock.json",
               lambda: "@prisma/client %s, @prisma/adapter-pg %s, pg %s; %s" % (
                   _npm_version(PRISMA_NODE, "@prisma/client"), _npm_version(PRISMA_NODE, "@prisma/adapter-pg"),
                   _npm_version(PRISMA_NODE, "pg"), _node())),
    "node-postgres": ("node-postgres (`pg`)", "npm: tests/drivers/package-lock.json",
                      lambda: "pg %s, pg-copy-streams %s; %s" % (
                          _npm_version(DRIVERS_NODE, "pg"), _npm_version(DRIVERS_NODE, "pg-copy-streams"), _node())),
    "postgres.js": ("postgres.js (`postgres`)", "npm: tests/drivers/package-lock.json",
                    lambda: "postgres %s; %s" % (_npm_version(DRIVERS_NODE, "postgres"), _node())),
    "psycopg3": ("psycopg 3", "Debian: python3-psycopg",
                 lambda: "%s (libpq %s)" % (_python_version("psycopg"), _libpq_version())),
    "psycopg2": ("psycopg2", "Debian: python3-psycopg2", lambda: _python_version("psycopg2")),
    "asyncpg": ("asyncpg", "Debian: python3-asyncpg", lambda: _python_version("asyncpg")),
    "pgjdbc": ("pgjdbc", "Debian: libpostgresql-jdbc-java, default-jdk-headless",
               lambda: "%s; Java %s" % (_pgjdbc_version(), _command_version(["java", "-version"], r'version "([^"]+)"'))),
    "psql": ("psql", "Debian: postgresql-client-15", lambda: _command_version([os.path.join(PG_BINDIR, "psql"), "--version"])),
    "pgbench": ("pgbench", "Debian: postgresql-client-15",
                lambda: _command_version([os.path.join(PG_BINDIR, "pgbench"), "--version"])),
}


def _one_line(text, limit=160):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _cell(text):
    return str(text).replace("|", "\\|")


class ClientMatrix:
    """pytest plugin (registered by conftest.py)."""

    def __init__(self, config, pooler_kind):
        self.config = config
        self.pooler_kind = pooler_kind
        self.rows = {}       # nodeid -> row dict, in collection order
        self.partial = []    # why this run cannot write the doc

    # ---- collection ----
    def pytest_collection_modifyitems(self, items):
        for item in items:
            m = item.get_closest_marker("client")
            if m is None:
                continue
            if len(m.args) != 2 or m.args[0] not in CLIENTS:
                raise pytest.UsageError("%s: @pytest.mark.client(key, what) needs a key from %s, got %r"
                                        % (item.nodeid, sorted(CLIENTS), m.args))
            params = getattr(getattr(item, "callspec", None), "params", {})
            what = m.args[1].format(**params) if params else m.args[1]
            self.rows[item.nodeid] = {"client": m.args[0], "test": item.nodeid.split("::", 1)[-1],
                                      "file": os.path.basename(item.nodeid.split("::")[0]), "what": what,
                                      "pool": m.kwargs.get("pool"), "result": None}

    def pytest_deselected(self, items):
        for item in items:
            if item.nodeid in self.rows:
                del self.rows[item.nodeid]
                self._partial("tests were deselected")

    def _partial(self, why):
        if why not in self.partial:
            self.partial.append(why)

    # ---- results ----
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        row = self.rows.get(item.nodeid)
        if row is None:
            return
        rep = outcome.get_result()
        poolers = getattr(item, "_sl_poolers", [])
        if poolers and rep.when == "call":
            row["pool"] = ", ".join(sorted({"%s/%s" % (p.settings.get("pool_mode"), p.settings.get("default_pool_size"))
                                            for p in poolers}))
        if hasattr(rep, "wasxfail"):
            row["result"] = ("xfail: " + _one_line(rep.wasxfail)) if rep.skipped else "XPASS (marked xfail)"
        elif rep.failed:
            crash = getattr(rep.longrepr, "reprcrash", None)
            row["result"] = "FAIL" + (" (%s)" % rep.when if rep.when != "call" else "") + ": " + \
                _one_line(crash.message if crash is not None else rep.longreprtext)
        elif rep.skipped:
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else rep.longreprtext
            row["result"] = "skipped: " + _one_line(reason.replace("Skipped: ", ""))
        elif rep.when == "call" and row["result"] is None:
            row["result"] = "pass"

    # ---- the doc ----
    def _whole_suite(self, session):
        opt = self.config.option
        if getattr(opt, "keyword", ""):
            self._partial("-k")
        if getattr(opt, "markexpr", ""):
            self._partial("-m")
        if getattr(opt, "lf", False):
            self._partial("--lf")
        here = os.path.dirname(os.path.abspath(__file__))
        cwd = str(self.config.invocation_params.dir)
        args = [os.path.normpath(os.path.join(cwd, a.split("::")[0])) for a in self.config.args] or [here]
        if any(a != here for a in args):
            self._partial("not the whole tests/integration directory")
        if self.pooler_kind != "pgsluice":
            self._partial("POOLER=%s" % self.pooler_kind)
        if not self.rows:
            self._partial("no rows collected")
        missing = [n for n, r in self.rows.items() if r["result"] is None]
        if missing:
            self._partial("%d rows did not run (-x, interrupted?)" % len(missing))
        return not self.partial

    def render(self):
        versions = {key: CLIENTS[key][2]() for key in CLIENTS}
        by_client = {key: [r for r in self.rows.values() if r["client"] == key] for key in CLIENTS}
        workers = os.environ.get("SL_WORKERS", "1 (default)")
        pg = _command_version([os.path.join(PG_BINDIR, "postgres"), "--version"])
        out = [
            "# Client compatibility matrix",
            "",
            "<!-- Generated by the integration suite (tests/integration/client_matrix.py) at the end of a",
            "     full run against pgsluice (`make test`). Do not edit: change the tests and run them. -->",
            "",
            "Real PostgreSQL drivers and tools, each row one test in `tests/integration` run through pgsluice",
            "against a real PostgreSQL %s primary and streaming replica (pgsluice `workers = %s`). The pool column" % (pg, workers),
            "is the pgsluice pool the test ran against (`pool_mode/default_pool_size`): transaction pooling over a",
            "pool of 5 server connections unless it says otherwise. Versions are the ones installed for the run.",
            "What each client sends (simple or extended protocol, named statements, pipelining, COPY) is described",
            "in [OPERATIONS.md](OPERATIONS.md#application-drivers); the Prisma module and its example app are in",
            "[integrations/prisma](../integrations/prisma/README.md).",
            "",
            "| client | version | installed from | rows | result |",
            "| --- | --- | --- | --- | --- |",
        ]
        for key, (name, source, _) in CLIENTS.items():
            rows = by_client[key]
            passed = sum(r["result"] == "pass" for r in rows)
            other = len(rows) - passed
            result = "**no rows**" if not rows else ("all pass" if not other else
                                                     "%d pass, **%d not**" % (passed, other))
            out.append("| %s | %s | %s | %d | %s |" % (name, _cell(versions[key]), source, len(rows), result))
        for key, (name, _, _) in CLIENTS.items():
            if not by_client[key]:
                continue
            out += ["", "## %s" % name, "", "| what it exercises | pool | result | test |", "| --- | --- | --- | --- |"]
            for r in by_client[key]:
                result = r["result"] if r["result"] == "pass" else "**%s**" % r["result"]
                out.append("| %s | %s | %s | `%s::%s` |" % (_cell(r["what"]), r["pool"] or "-", _cell(result),
                                                            r["file"], _cell(r["test"])))
        return "\n".join(out) + "\n"

    def pytest_sessionfinish(self, session):
        self.whole = self._whole_suite(session)
        self.changed = False
        if not self.whole:
            return
        text = self.render()
        try:
            with open(DOC) as f:
                self.changed = f.read() != text
        except OSError:
            self.changed = True
        if self.changed:
            with open(DOC, "w") as f:
                f.write(text)

    def pytest_terminal_summary(self, terminalreporter):
        if not self.rows:
            return
        counts = {}
        for r in self.rows.values():
            k = (r["result"] or "did not run").split(":")[0]
            counts[k] = counts.get(k, 0) + 1
        line = "client matrix: %d rows (%s); " % (len(self.rows), ", ".join("%d %s" % (n, k) for k, n in counts.items()))
        if not getattr(self, "whole", False):
            line += "docs/CLIENTS.md left as it is (partial run: %s)" % "; ".join(self.partial)
        elif self.changed:
            line += "docs/CLIENTS.md rewritten with new content: review and commit it"
        else:
            line += "docs/CLIENTS.md is up to date"
        terminalreporter.write_line(line)
