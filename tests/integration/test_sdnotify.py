"""test_sdnotify.py - pgsluice's systemd notifications (Type=notify-reload), received on a fake NOTIFY_SOCKET
(a unix datagram socket the test binds): READY=1 once it listens, RELOADING=1 with MONOTONIC_USEC then READY=1
around a reload (also a failed one), STOPPING=1 at shutdown, STATUS= lines throughout."""
import os
import re
import signal
import socket
import time

import pytest

pytestmark = pytest.mark.pgsluice_only


class FakeSystemd:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def next(self, timeout=10):
        """The next notification as a dict (key -> value)."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def expect(self, key, timeout=10):
        """Messages until one carries key; returns it (fails after timeout)."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                m = self.next(max(0.1, deadline - time.monotonic()))
            except socket.timeout:
                break
            seen.append(m)
            if key in m:
                return m
        pytest.fail("no %s notification; got %r" % (key, seen))

    def close(self):
        self.sock.close()
        os.unlink(self.path)


@pytest.fixture
def fake_systemd(session_dir, monkeypatch):
    f = FakeSystemd(os.path.join(session_dir, "notify-%d.sock" % os.getpid()))
    monkeypatch.setenv("NOTIFY_SOCKET", f.path)
    yield f
    f.close()


def test_ready_reloading_and_stopping_reach_notify_socket(fake_systemd, pooler, monkeypatch):
    p = pooler()
    monkeypatch.delenv("NOTIFY_SOCKET")
    ready = fake_systemd.expect("READY")
    assert ready["READY"] == "1"
    assert ready["MAINPID"] == str(p.pid)
    assert ready["STATUS"] == "accepting connections"

    # every 5 s a STATUS= line with the connection counts, for `systemctl status`
    status = fake_systemd.expect("STATUS", timeout=15)
    assert re.fullmatch(r"\d+ clients, \d+ server connections in use", status["STATUS"]), status

    before = time.monotonic_ns() // 1000
    p.signal(signal.SIGHUP)
    reloading = fake_systemd.expect("RELOADING")
    assert reloading["RELOADING"] == "1"
    usec = int(reloading["MONOTONIC_USEC"])   # CLOCK_MONOTONIC, as systemd compares it
    assert before <= usec <= time.monotonic_ns() // 1000
    done = fake_systemd.expect("READY")
    assert done["STATUS"] == "configuration reloaded"

    # a broken file: the reload is refused, the old config stays, and systemd still gets READY=1
    p.reload(extra_lines=["this line is not ini"], wait=0)
    fake_systemd.expect("RELOADING")
    failed = fake_systemd.expect("READY")
    assert "RELOAD failed" in failed["STATUS"]

    p.signal(signal.SIGINT)
    stopping = fake_systemd.expect("STOPPING")
    assert stopping["STOPPING"] == "1" and "shutting down" in stopping["STATUS"]
    assert p.wait_exit(10) == 0


def test_an_unreachable_notify_socket_does_not_stop_pgsluice(session_dir, pooler, monkeypatch):
    # systemd gone or NOTIFY_SOCKET stale: notifications fail quietly, start/reload/stop work as usual
    monkeypatch.setenv("NOTIFY_SOCKET", os.path.join(session_dir, "nobody-listens.sock"))
    p = pooler()
    monkeypatch.delenv("NOTIFY_SOCKET")
    p.reload({"default_pool_size": 3}, wait=0)
    from admin_helpers import console
    from harness.util import wait_for

    def pool_size():
        with console(p) as c:
            return {r["key"]: r["value"] for r in c.execute("SHOW CONFIG").fetchall()}["default_pool_size"]
    wait_for(lambda: pool_size() == "3", timeout=10, what="reload")
    p.signal(signal.SIGINT)
    assert p.wait_exit(10) == 0
