"""LISTEN/NOTIFY in transaction pooling without a server per listener (listen_fanout): a LISTEN or
UNLISTEN sent alone between transactions is served by pgsluice, one listener connection per database
LISTENs on the union of the channels, and every client gets each notification of its channels once,
in order, with the channel, payload and sending PID it would see on a direct connection."""
import asyncio
import select
import time

import psycopg
import pytest

from admin_helpers import console, show
from harness import clients
from harness.util import wait_for
from test_http import http_pooler
from test_http_metrics import scrape, value
from test_session_state import simple, tx

pytestmark = pytest.mark.pgsluice_only


class Inbox:
    """The notifications a psycopg connection received, read off its libpq connection."""

    def __init__(self, conn):
        self.conn = conn
        self.got = []

    def poll(self, timeout=0.0):
        pg = self.conn.pgconn
        if timeout:
            select.select([pg.socket], [], [], timeout)
        pg.consume_input()
        while True:
            n = pg.notifies()
            if n is None:
                break
            self.got.append((n.relname.decode(), n.extra.decode(), n.be_pid))
        return self.got

    def wait(self, count, timeout=15):
        deadline = time.monotonic() + timeout
        while len(self.poll()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError("got %d of %d notifications: %r" % (len(self.got), count, self.got))
            self.poll(0.1)
        return self.got


def notify(conn, channel, payload):
    """NOTIFY through conn in one statement; the sending backend's PID."""
    return int(conn.execute("SELECT pg_backend_pid() FROM (SELECT pg_notify(%s, %s)) n", (channel, payload))
               .fetchone()[0])


def listeners(d):
    """Backends of app in appdb whose last statement was one of pgsluice's LISTEN / UNLISTEN."""
    return d.execute("SELECT pid, query FROM pg_stat_activity WHERE datname = 'appdb' AND usename = 'app' "
                     "AND (query LIKE 'LISTEN \"%%' OR query LIKE 'UNLISTEN \"%%')").fetchall()


def pinned(p):
    return [r["pinned"] for r in show(p, "CLIENTS") if r["database"] == "appdb"]


@pytest.mark.core
def test_fifty_listeners_on_five_channels_get_every_notify_once_in_order(pooler, direct):
    p = pooler(tx(2))
    channels = ["fan_%d" % i for i in range(5)]
    per_channel = 20
    conns = [clients.connect(p) for _ in range(50)]
    senders = [clients.connect(p), clients.connect(p)]
    try:
        boxes = []
        for i, c in enumerate(conns):
            assert simple(c, "LISTEN " + channels[i % 5]) == "LISTEN"
            boxes.append(Inbox(c))
        # nobody is pinned: the pool of 2 serves the senders
        assert set(pinned(p)) == {""}
        sent = {ch: [] for ch in channels}
        for k in range(per_channel):
            for j, ch in enumerate(channels):
                payload = "%s:%d" % (ch, k)
                sent[ch].append((ch, payload, notify(senders[(k + j) % 2], ch, payload)))
        assert len({pid for v in sent.values() for _, _, pid in v}) <= 2
        deadline = time.monotonic() + 30
        while any(len(b.poll()) < per_channel for b in boxes) and time.monotonic() < deadline:
            select.select([c.pgconn.socket for c in conns], [], [], 0.1)
        for i, b in enumerate(boxes):
            assert b.poll(0.01) == sent[channels[i % 5]], "listener %d" % i
        # one listener connection; the pool kept its 2 servers
        assert len(listeners(direct("appdb"))) == 1
        row = [r for r in show(p, "POOLS") if r["database"] == "appdb" and r["user"] == "app"][0]
        assert row["sv_active"] + row["sv_idle"] + row["sv_used"] + row["sv_tested"] + row["sv_login"] <= 2
    finally:
        for c in conns + senders:
            c.close()
    # everybody left: the listener connection closes
    wait_for(lambda: not listeners(direct("appdb")), 15, what="the listener connection to close")


async def until(cond, timeout=15, what="the condition"):
    """Poll cond (letting the event loop run: asyncpg reads notifications then) until it holds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("cache", [100, 0], ids=["named", "unnamed"])
def test_asyncpg_add_listener_is_served_by_the_fanout_without_a_pin(pooler, direct, cache):
    """asyncpg's add_listener prepares LISTEN (under a name with its statement cache, as the unnamed
    statement without) and runs it in a second exchange: served by the fan-out, so the client is not
    pinned and the pool's only server serves the other clients; each notification reaches the
    callback once, in order; remove_listener stops delivery and add_listener again (the cached
    statement bound alone) brings it back."""
    p = pooler(tx(1))
    d = direct("appdb")

    async def run():
        c = await clients.aconnect(p, statement_cache_size=cache)
        got = []

        def cb(_c, pid, ch, payload):
            got.append((ch, payload, pid))
        await c.add_listener("apg_chan", cb)
        assert pinned(p) == [""]
        assert len(listeners(d)) == 1
        with clients.connect(p) as s:  # takes the pool's only server for each statement
            assert simple(s, "SELECT 41") == "41"
            assert await c.fetchval("SELECT 42") == 42
            sent = [("apg_chan", str(k), notify(s, "apg_chan", str(k))) for k in range(5)]
            sent.append(("apg_chan", "end", notify(s, "apg_chan", "end")))
            await until(lambda: len(got) >= len(sent), what="six notifications")
            assert got == sent
            await c.remove_listener("apg_chan", cb)
            assert set(pinned(p)) == {""}
            wait_for(lambda: not listeners(d), 15, what="the listener connection to close")
            notify(s, "apg_chan", "not listened")
            await c.add_listener("apg_chan", cb)
            sent.append(("apg_chan", "again", notify(s, "apg_chan", "again")))
            await until(lambda: len(got) >= len(sent), what="the notification after LISTEN again")
            assert got == sent
            assert set(pinned(p)) == {""}
            assert await c.fetchval("SELECT 43") == 43
        await c.close()
        wait_for(lambda: not listeners(d), 15, what="the listener connection to close")

    asyncio.run(run())


def test_asyncpg_listen_inside_a_transaction_pins(pooler):
    """The cached LISTEN statement bound inside a transaction runs on the server: the client is pinned
    there (its Parse was answered by pgsluice, never seen by a server) and still gets notifications."""
    p = pooler(tx(2))

    async def run():
        c = await clients.aconnect(p, statement_cache_size=100)
        got = []

        def cb(_c, pid, ch, payload):
            got.append((ch, payload, pid))
        await c.add_listener("in_tx", cb)
        await c.remove_listener("in_tx", cb)
        assert pinned(p) == [""]
        async with c.transaction():
            await c.add_listener("in_tx", cb)
        assert pinned(p) == ["listen"]
        with clients.connect(p) as s:
            pid = notify(s, "in_tx", "t")
        await until(lambda: got, what="the notification")
        assert got == [("in_tx", "t", pid)]
        await c.close()

    asyncio.run(run())


def test_psycopg_prepared_and_binary_listen_are_served_by_the_fanout(pooler, direct):
    """psycopg 3 sends LISTEN through the extended protocol with prepare=True (PQsendPrepare, then
    PQsendQueryPrepared of the named statement) or binary=True (PQsendQueryParams, the unnamed one):
    served by the fan-out over a pool of one, and conn.notifies() gets every notification once, in
    order."""
    p = pooler(tx(1))

    async def run():
        a = await psycopg.AsyncConnection.connect(p.dsn("appdb", "app", None), autocommit=True,
                                                  prepare_threshold=None)
        cur = await a.execute("LISTEN ps_named", prepare=True)
        assert cur.statusmessage == "LISTEN"
        cur = await a.execute("LISTEN ps_unnamed", binary=True)
        assert cur.statusmessage == "LISTEN"
        assert pinned(p) == [""]
        assert len(listeners(direct("appdb"))) == 1
        gen = a.notifies()

        async def receive(n):
            out = []
            while len(out) < n:
                x = await asyncio.wait_for(gen.__anext__(), 15)
                out.append((x.channel, x.payload, x.pid))
            return out
        with clients.connect(p) as s:
            sent = [(ch, ch + str(k), notify(s, ch, ch + str(k)))
                    for k in range(3) for ch in ("ps_named", "ps_unnamed")]
            assert await receive(len(sent)) == sent
            cur = await a.execute("UNLISTEN ps_unnamed", binary=True)
            assert cur.statusmessage == "UNLISTEN"
            notify(s, "ps_unnamed", "not listened")
            last = ("ps_named", "last", notify(s, "ps_named", "last"))
            assert await receive(1) == [last]
            assert await (await a.execute("SELECT 7", binary=False)).fetchone() == (7,)
            assert set(pinned(p)) == {""}
        await gen.aclose()
        await a.close()

    asyncio.run(run())


def test_extended_listen_answers_match_a_direct_connection(pooler, cluster):
    """What libpq gets for LISTEN / UNLISTEN through the extended protocol (prepared, described,
    executed; run with PQexecParams) is what a direct connection gets, errors included."""
    p = pooler(tx(1))

    def run(conn, steps):
        from psycopg import pq
        f = pq.DiagnosticField
        out = []
        for step in steps:
            r = step(conn.pgconn)
            out.append((r.status, r.command_status, r.nfields, r.nparams, r.error_field(f.SQLSTATE)))
        return out
    served = [
        lambda pg: pg.prepare(b"lst", b"LISTEN cmp_chan"),
        lambda pg: pg.describe_prepared(b"lst"),
        lambda pg: pg.exec_prepared(b"lst", None),
        lambda pg: pg.exec_prepared(b"lst", None),  # twice: the same answer
        lambda pg: pg.exec_params(b"UNLISTEN cmp_chan", None),
        lambda pg: pg.exec_params(b"UNLISTEN *", None, result_format=1),
        lambda pg: pg.prepare(b"", b"listen cmp_unnamed"),
        lambda pg: pg.describe_prepared(b""),
        lambda pg: pg.exec_prepared(b"", None),
        lambda pg: pg.exec_params(b"UNLISTEN cmp_unnamed", None),
    ]
    # these go to the server (and pin, as a LISTEN sent there does, even when it fails)
    refused = [
        lambda pg: pg.prepare(b"lst", b"LISTEN cmp_other"),  # name in use
        lambda pg: pg.exec_params(b"LISTEN $1", [b"x"]),  # not a statement with parameters
    ]
    with clients.direct(cluster, db="appdb") as d, clients.connect(p) as c:
        want = run(d, served)
        assert run(c, served) == want
        assert [r[1] for r in want] == [b"", b"", b"LISTEN", b"LISTEN", b"UNLISTEN", b"UNLISTEN", b"", b"",
                                        b"LISTEN", b"UNLISTEN"]
        assert pinned(p) == [""]
        want = run(d, refused)
        assert run(c, refused) == want
        assert [r[4] for r in want] == [b"42P05", b"42601"]


def test_unlisten_stops_delivery_and_client_exit_unlistens(pooler, direct):
    p = pooler(tx(2))
    d = direct("appdb")
    with clients.connect(p) as a, clients.connect(p) as b, clients.connect(p) as s:
        ia, ib = Inbox(a), Inbox(b)
        assert simple(a, "LISTEN un_one") == "LISTEN"
        assert simple(a, 'LISTEN "Un_Two"') == "LISTEN"
        assert simple(b, "LISTEN UN_ONE") == "LISTEN"  # folded: the same channel
        assert simple(a, "LISTEN un_one") == "LISTEN"  # twice: still once
        assert set(pinned(p)) == {""}
        pid = notify(s, "un_one", "1")
        assert ia.wait(1) == [("un_one", "1", pid)]
        assert ib.wait(1) == [("un_one", "1", pid)]
        assert simple(a, "UNLISTEN un_one") == "UNLISTEN"
        pid2 = notify(s, "un_one", "2")
        pid3 = notify(s, "Un_Two", "3")
        assert ib.wait(2)[1] == ("un_one", "2", pid2)
        # a's next notification is the one of its other channel: un_one's was not delivered
        assert ia.wait(2) == [("un_one", "1", pid), ("Un_Two", "3", pid3)]
        # b leaves: the listener UNLISTENs the channel nobody listens to any more
        b.close()
        wait_for(lambda: [q for _, q in listeners(d)] == ['UNLISTEN "un_one"'], 15, what="UNLISTEN of un_one")
        notify(s, "un_one", "4")
        pid5 = notify(s, "Un_Two", "5")
        assert ia.wait(3)[2] == ("Un_Two", "5", pid5)
        assert simple(a, "UNLISTEN *") == "UNLISTEN"
        wait_for(lambda: not listeners(d), 15, what="the listener connection to close")
        notify(s, "Un_Two", "6")
        assert simple(a, "SELECT 1") == "1"
        assert ia.poll(0.2) == [("un_one", "1", pid), ("Un_Two", "3", pid3), ("Un_Two", "5", pid5)]


def delivers_again_after_the_gap(ia, s, channel, count):
    """After the listener connection was replaced: notify on channel through s until one reaches ia
    (what is sent in the gap is lost), then count more, each of which must arrive once, in order."""
    n = 0

    def arrived():
        nonlocal n
        n += 1
        notify(s, channel, "probe%d" % n)
        return len(ia.poll(0.1)) > 1
    wait_for(arrived, 20, interval=0.1, what="a notification through the new listener connection")
    base = len(ia.poll(0.2))
    sent = [(channel, "after%d" % k, notify(s, channel, "after%d" % k)) for k in range(count)]
    assert ia.wait(base + count)[base:] == sent


@pytest.mark.core
def test_listener_killed_is_reestablished(pooler, direct):
    p = pooler(tx(2))
    d = direct("appdb")
    with clients.connect(p) as a, clients.connect(p) as s:
        ia = Inbox(a)
        simple(a, "LISTEN re_chan")
        pid = notify(s, "re_chan", "before")
        assert ia.wait(1) == [("re_chan", "before", pid)]
        (old,) = [r[0] for r in listeners(d)]
        assert d.execute("SELECT pg_terminate_backend(%s)", (old,)).fetchone()[0] is True
        # notifications sent while it is away are lost; from then on, every one exactly once, in order
        delivers_again_after_the_gap(ia, s, "re_chan", 10)
        new = [r[0] for r in listeners(d)]
        assert len(new) == 1 and new[0] != old
        assert "listener connection" in p.log_text() and "lost" in p.log_text()


def test_reconnect_replaces_the_listener_connection(pooler, direct):
    """RECONNECT of the database replaces the listener connection too: a new one LISTENs on every
    channel again (what is sent in the gap is lost, as when it is killed)."""
    p = pooler(tx(2))
    d = direct("appdb")
    with clients.connect(p) as a, clients.connect(p) as s:
        ia = Inbox(a)
        simple(a, "LISTEN rc_chan")
        pid = notify(s, "rc_chan", "before")
        assert ia.wait(1) == [("rc_chan", "before", pid)]
        (old,) = [r[0] for r in listeners(d)]
        with console(p) as c:
            c.execute("RECONNECT appdb")
        wait_for(lambda: [r[0] for r in listeners(d)] not in ([], [old]), 15, what="a new listener connection")
        assert old not in [r[0] for r in listeners(d)]
        delivers_again_after_the_gap(ia, s, "rc_chan", 5)
        assert "is replaced (RECONNECT)" in p.log_text()
        # a client that did not LISTEN is not pinned, and nobody is
        assert set(pinned(p)) == {""}


@pytest.mark.core
def test_notification_during_a_transaction_arrives_after_it_ends(pooler):
    p = pooler(tx(2))
    with clients.connect(p) as a, clients.connect(p) as b, clients.connect(p) as s:
        ia, ib = Inbox(a), Inbox(b)
        simple(a, "LISTEN tx_chan")
        simple(b, "LISTEN tx_chan")
        simple(a, "BEGIN")
        assert simple(a, "SELECT 1") == "1"
        pid = notify(s, "tx_chan", "x")
        # b (idle) has it: the listener passed it on; a, in its transaction, has not
        assert ib.wait(1) == [("tx_chan", "x", pid)]
        assert simple(a, "SELECT 2") == "2"
        assert ia.poll(0.1) == []
        simple(a, "COMMIT")
        assert ia.wait(1) == [("tx_chan", "x", pid)]
        # a LISTEN inside a transaction block still pins the client to its server (as before)
        simple(a, "BEGIN")
        simple(a, "LISTEN tx_pinned")
        simple(a, "COMMIT")
        assert "listen" in pinned(p)
        pid2 = notify(s, "tx_pinned", "y")
        assert ia.wait(2)[1] == ("tx_pinned", "y", pid2)


def test_listen_on_the_server_of_a_channel_held_through_the_fanout(pooler):
    """A client that has a channel through the fan-out and LISTENs on it again in a transaction block:
    rolled back, it keeps the channel (as on a direct connection, the earlier LISTEN stands); committed,
    its server delivers the channel from then on, each notification once."""
    p = pooler(tx(2))
    with clients.connect(p) as a, clients.connect(p) as s:
        ia = Inbox(a)
        simple(a, "LISTEN rb_chan")
        simple(a, "BEGIN")
        simple(a, "LISTEN rb_chan")
        sent = [("rb_chan", "during", notify(s, "rb_chan", "during"))]
        simple(a, "ROLLBACK")
        sent.append(("rb_chan", "after rollback", notify(s, "rb_chan", "after rollback")))
        assert ia.wait(2) == sent
        simple(a, "BEGIN")
        simple(a, "LISTEN rb_chan")
        simple(a, "COMMIT")
        assert "listen" in pinned(p)
        sent += [("rb_chan", str(k), notify(s, "rb_chan", str(k))) for k in range(3)]
        assert ia.wait(len(sent)) == sent
        assert simple(a, "SELECT 1") == "1"
        assert ia.poll(0.3) == sent  # nothing twice


def test_pin_session_state_error_still_serves_listen_through_the_fanout(pooler):
    p = pooler(tx(2, pin_session_state="error"))
    with clients.connect(p) as a, clients.connect(p) as s:
        ia = Inbox(a)
        assert simple(a, "LISTEN err_chan") == "LISTEN"
        pid = notify(s, "err_chan", "e")
        assert ia.wait(1) == [("err_chan", "e", pid)]
        # in a transaction block it would pin: refused
        res = a.pgconn.exec_(b"BEGIN; LISTEN err_chan2; COMMIT")
        assert res.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"0A000"


def test_listen_fanout_off_pins_as_before_and_session_mode_is_unchanged(pooler):
    p = pooler(tx(2, listen_fanout=0))
    with clients.connect(p, application_name="off") as a, clients.connect(p) as s:
        ia = Inbox(a)
        simple(a, "LISTEN off_chan")
        assert pinned(p) == ["listen", ""] or sorted(pinned(p)) == ["", "listen"]
        pid = notify(s, "off_chan", "z")
        assert ia.wait(1) == [("off_chan", "z", pid)]
    q = pooler({"pool_mode": "session", "default_pool_size": 2})
    with clients.connect(q) as a, clients.connect(q) as s:
        ia = Inbox(a)
        simple(a, "LISTEN ses_chan")
        pid = notify(s, "ses_chan", "w")
        assert ia.wait(1) == [("ses_chan", "w", pid)]
        # a's own server delivers it: its backend is the one listening
        assert a.execute("SELECT pg_listening_channels()").fetchall() == [("ses_chan",)]


def test_metrics_count_channels_and_deliveries(pooler):
    p = http_pooler(pooler, tx(2))
    with clients.connect(p) as a, clients.connect(p) as s:
        ia = Inbox(a)
        simple(a, "LISTEN m_one")
        simple(a, "LISTEN m_two")
        text = scrape(p)
        assert value(text, "pgsluice_listen_channels") == 2
        assert value(text, "pgsluice_listen_connections") == 1
        assert value(text, "pgsluice_listen_subscriptions") == 2
        pid = notify(s, "m_two", "p")
        assert ia.wait(1) == [("m_two", "p", pid)]
        wait_for(lambda: value(scrape(p), "pgsluice_listen_notifications_total") >= 1, 10, what="the counter")


def test_takeover_closes_subscribed_clients_with_57p01_and_the_new_process_serves_listen(pooler, direct):
    from test_takeover import complete_takeover, start_takeover
    p = pooler(tx(2))
    d = direct("appdb")
    listening = clients.connect(p)
    plain = clients.connect(p)
    simple(listening, "LISTEN to_chan")
    assert len(listeners(d)) == 1
    complete_takeover(p, start_takeover(p))
    assert simple(plain, "SELECT 2") == "2"
    with pytest.raises(psycopg.OperationalError) as e:
        listening.execute("SELECT 1")
    assert "LISTEN subscriptions are not" in str(e.value), str(e.value)
    listening.close()
    # the old listener connection went with the old process; the new one opens its own
    wait_for(lambda: not listeners(d), 15, what="the old listener connection to close")
    with clients.connect(p) as a:
        ia = Inbox(a)
        simple(a, "LISTEN to_chan")
        pid = notify(plain, "to_chan", "new")
        assert ia.wait(1) == [("to_chan", "new", pid)]
    plain.close()


def test_client_with_more_than_listen_queue_max_waiting_is_disconnected(pooler):
    p = pooler(tx(2, listen_queue_max=3))
    with clients.connect(p) as a, clients.connect(p) as b, clients.connect(p) as s:
        ib = Inbox(b)
        simple(a, "LISTEN q_chan")
        simple(b, "LISTEN q_chan")
        simple(a, "BEGIN")  # a holds them until its transaction ends
        sent = [("q_chan", str(k), notify(s, "q_chan", str(k))) for k in range(3)]
        assert ib.wait(3) == sent
        simple(a, "SELECT 1")  # 3 waiting: still fine
        sent.append(("q_chan", "3", notify(s, "q_chan", "3")))
        assert ib.wait(4) == sent
        wait_for(lambda: "listen_queue_max" in p.log_text(), 10, what="the drop to be logged")
        with pytest.raises(psycopg.OperationalError):
            a.execute("SELECT 2")
        # b, idle all along, is unaffected
        assert simple(b, "SELECT 3") == "3"
