"""test_demo.py - `make demo` (scripts/demo.sh, non-interactive with DEMO_NO_WAIT=1): the compose topology
without Docker works with 6432 and 8081 both taken, on ports it picks and prints; a port asked for with
DEMO_PORT / DEMO_HTTP_PORT that is taken is refused before anything starts."""
import os
import re
import socket
import subprocess

import pytest

from harness.util import HOST, free_port
from tools_helpers import sluice_bin

pytestmark = [pytest.mark.pgsluice_only, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(REPO, "scripts", "demo.sh")


def occupy(port):
    """Listen on port (if nothing does yet) so the demo finds it taken; None when it already is."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
    except OSError:
        s.close()
        return None  # taken by something else already: just as good
    s.listen(1)
    return s


def run_demo(env, timeout=170):
    e = {k: v for k, v in os.environ.items() if not k.startswith("DEMO_")}
    e.update({"DEMO_NO_WAIT": "1", "SL_BIN": sluice_bin()})
    e.update(env)
    return subprocess.run([DEMO], env=e, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_demo_runs_on_other_ports_when_6432_and_8081_are_taken():
    held = [occupy(6432), occupy(8081)]
    try:
        r = run_demo({})
    finally:
        for s in held:
            if s:
                s.close()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "port 6432 is taken: using" in out and "port 8081 is taken: using" in out, out
    m = re.search(r"Ports: DEMO_PORT=(\d+) DEMO_HTTP_PORT=(\d+)", out)
    assert m, out
    port, http_port = int(m.group(1)), int(m.group(2))
    assert port != 6432 and http_port != 8081 and port != http_port
    assert "is running on 127.0.0.1:%d" % port in out
    assert "number of failed transactions: 0" in out
    assert "sav3_replica through pgsluice: pg_is_in_recovery = t" in out
    assert "SCRAM login as app through pgsluice with the auth_file from pgsluice userlist: ok" in out
    assert re.search(r"GET /health on 127\.0\.0\.1:%d: \{\"status\":\"healthy\"" % http_port, out), out
    assert "removed /tmp/pgsluice-demo." in out   # cleaned up after itself


def test_demo_refuses_a_requested_port_that_is_taken():
    port = free_port()
    s = occupy(port)
    try:
        r = run_demo({"DEMO_PORT": str(port)}, timeout=30)
        assert r.returncode != 0
        assert "DEMO_PORT=%d: port %d on 127.0.0.1 is already in use" % (port, port) in r.stderr, r.stderr
        assert "starting a PostgreSQL" not in r.stdout
        r = run_demo({"DEMO_HTTP_PORT": "http"}, timeout=30)
        assert r.returncode != 0 and "DEMO_HTTP_PORT=http is not a port number" in r.stderr, r.stderr
    finally:
        s.close()
