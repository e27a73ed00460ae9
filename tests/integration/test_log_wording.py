"""Log lines in PgBouncer's wording, for the tools that read PgBouncer logs (pgbadger and others
match on "C-0x...: db/user@addr:port login attempt: ...", "closing because: ... (age=...)", the
server's "new connection to server" and the periodic "stats:" line)."""
import re

import pytest

from harness import clients
from harness.util import wait_for

pytestmark = pytest.mark.pgsluice_only  # the comparison PgBouncer writes these lines itself

PREFIX = r"(LOG|INFO) (C|S)-0x[0-9a-f]+: [^/ ]+/[^@ ]+@[^ ]+:\d+ "


def test_connection_and_stats_lines_read_like_pgbouncers(pooler):
    p = pooler({"log_connections": 1, "log_disconnections": 1, "stats_period": 1})
    with clients.connect(p) as c:
        c.execute("SELECT 1")
    log = lambda: p.log_text()  # noqa: E731
    wait_for(lambda: re.search(PREFIX.replace("(C|S)", "C") + r"closing because: client close request \(age=\d+s\)",
                               log()), timeout=10, what="a closing line")
    assert re.search(PREFIX.replace("(C|S)", "C") + r"login attempt: db=appdb user=app tls=no replication=no", log())
    assert re.search(PREFIX.replace("(C|S)", "S") + r"new connection to server \(from 127\.0\.0\.1:\d+\)", log())
    wait_for(lambda: re.search(r"stats: \d+ xacts/s, \d+ queries/s, \d+ client parses/s, \d+ server parses/s, "
                               r"\d+ binds/s, in \d+ B/s, out \d+ B/s, xact \d+ us, query \d+ us, wait \d+ us", log()),
             timeout=10, what="a stats line")
