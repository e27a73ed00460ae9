/* test_stream.c - the stream over the plain transport, against a socketpair: short reads,
 * EAGAIN, end of file, partial writes (the out queue goes before the forwarded region, and what
 * did not fit is sent later), buffer growth, bulk reads, and taking whole messages off a stream. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/msgread.h"
#include "net/stream.h"
#include "net/worker.h"

static sl_worker fake_worker; /* only its buffer cache is used */

typedef struct pair {
    int mine, peer;
    sl_stream s;
} pair;

static void open_pair(pair *p)
{
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    p->mine = fds[0];
    p->peer = fds[1];
    fake_worker.buf_size = 64;
    sl_stream_init(&p->s, p->mine);
    p->s.w = &fake_worker;
}

static void close_pair(pair *p)
{
    sl_stream_close(&p->s, NULL); /* never attached: finished at once, descriptor closed */
    close(p->peer);
}

static void test_short_read_then_again(void **state)
{
    (void)state;
    pair p;
    open_pair(&p);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_AGAIN); /* nothing there */
    assert_int_equal(write(p.peer, "abc", 3), 3);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_int_equal(p.s.end - p.s.pos, 3);
    assert_memory_equal(p.s.buf + p.s.pos, "abc", 3);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_AGAIN);
    close_pair(&p);
}

static void test_end_of_file(void **state)
{
    (void)state;
    pair p;
    open_pair(&p);
    assert_int_equal(write(p.peer, "x", 1), 1);
    shutdown(p.peer, SHUT_WR);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_EOF);
    close_pair(&p);
}

static void test_full_buffer_waits_for_the_parser(void **state)
{
    (void)state;
    pair p;
    open_pair(&p);
    size_t total = SL_STREAM_BULK_BUF + 100;
    char *big = malloc(total);
    assert_non_null(big);
    memset(big, 'z', total);
    assert_int_equal(write(p.peer, big, total), (ssize_t)total);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_int_equal(p.s.end, 64); /* the worker's buffer size */
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK); /* bulk mode: the rest in a bigger buffer */
    assert_int_equal(p.s.cap, SL_STREAM_BULK_BUF);
    assert_int_equal(p.s.end, SL_STREAM_BULK_BUF);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_AGAIN); /* full until consumed or grown */
    assert_true(sl_stream_make_room(&p.s, 100, 2 * SL_STREAM_BULK_BUF));
    assert_true(p.s.cap >= total);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_int_equal(p.s.end, total);
    assert_false(sl_stream_make_room(&p.s, 4 * SL_STREAM_BULK_BUF, 2 * SL_STREAM_BULK_BUF)); /* above max */
    free(big);
    close_pair(&p);
}

/* A read that fills the buffer means more is waiting (a large result, COPY): the next read goes
 * through a SL_STREAM_BULK_BUF buffer, with what was not consumed moved along; once a read comes
 * back short and everything is consumed, the big buffer is given back. */
static void test_bulk_reads_use_a_bigger_buffer_until_drained(void **state)
{
    (void)state;
    pair p;
    open_pair(&p);
    char data[300];
    for (size_t i = 0; i < sizeof(data); i++) data[i] = (char)('a' + i % 26);
    assert_int_equal(write(p.peer, data, sizeof(data)), (ssize_t)sizeof(data));
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_int_equal(p.s.cap, 64);
    assert_true(p.s.bulk);
    p.s.pos = p.s.parse = 10; /* the parser took 10 bytes */
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_int_equal(p.s.cap, SL_STREAM_BULK_BUF);
    assert_int_equal(p.s.pos, 0);
    assert_int_equal(p.s.parse, 0);
    assert_int_equal(p.s.end, sizeof(data) - 10);
    assert_memory_equal(p.s.buf, data + 10, sizeof(data) - 10);
    assert_false(p.s.bulk); /* short read: the socket is drained */
    /* a server's stream keeps its standard buffer, not a big one that is no longer needed */
    p.s.pos = p.s.parse = p.s.end;
    sl_stream_recycle_buf(&p.s);
    assert_null(p.s.buf);
    /* in bulk mode an emptied buffer is kept for the next read; trimmed (idle), it goes */
    assert_int_equal(write(p.peer, data, 64), 64);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_true(p.s.bulk);
    p.s.pos = p.s.parse = p.s.end;
    sl_stream_maybe_release_buf(&p.s);
    assert_non_null(p.s.buf);
    sl_stream_trim(&p.s);
    assert_null(p.s.buf);
    assert_false(p.s.bulk);
    close_pair(&p);
}

/* Read everything the peer has; returns the count. */
static size_t drain(int fd, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, out + n, cap - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    return n;
}

static void test_partial_writes_keep_order_and_finish_later(void **state)
{
    (void)state;
    pair p, src;
    open_pair(&p);
    open_pair(&src);
    int small = 4096;
    setsockopt(p.mine, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(p.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    /* 300 KB of pooler output, then 10 bytes forwarded from another stream */
    size_t total = 300 * 1024;
    char *data = malloc(total);
    for (size_t i = 0; i < total; i++) data[i] = (char)('a' + i % 26);
    sl_pb_bytes(&p.s.out, data, total);
    assert_int_equal(write(src.peer, "0123456789", 10), 10);
    assert_int_equal(sl_stream_read(&src.s), SL_IO_OK);
    src.s.parse = src.s.end; /* all of it decided for forwarding */
    char *got = malloc(total + 100);
    size_t have = 0;
    sl_io_status st = sl_stream_flush(&p.s, &src.s);
    assert_int_equal(st, SL_IO_AGAIN); /* the peer's buffer is full */
    assert_true(sl_stream_out_pending(&p.s));
    int rounds = 0;
    while (st == SL_IO_AGAIN && rounds++ < 100000) {
        have += drain(p.peer, got + have, total + 100 - have);
        st = sl_stream_flush(&p.s, &src.s);
    }
    assert_int_equal(st, SL_IO_OK);
    have += drain(p.peer, got + have, total + 100 - have);
    assert_int_equal(have, total + 10);
    assert_memory_equal(got, data, total);
    assert_memory_equal(got + total, "0123456789", 10);
    assert_int_equal(sl_stream_fwd_pending(&src.s), 0);
    assert_false(sl_stream_out_pending(&p.s));
    free(data);
    free(got);
    close_pair(&p);
    close_pair(&src);
}

static void test_write_to_a_closed_peer_is_an_error(void **state)
{
    (void)state;
    pair p;
    open_pair(&p);
    close(p.peer);
    sl_pb_bytes(&p.s.out, "hello", 5);
    assert_int_equal(sl_stream_flush(&p.s, NULL), SL_IO_ERROR);
    assert_int_equal(p.s.err, EPIPE);
    sl_stream_close(&p.s, NULL);
}

static void test_whole_messages_are_taken_one_at_a_time(void **state)
{
    (void)state;
    pair p;
    open_pair(&p);
    /* a 'Q' message of 100 bytes of body (larger than the worker buffer) arriving in two parts */
    uint8_t msg[105];
    msg[0] = 'Q';
    sl_put_u32(msg + 1, 104);
    memset(msg + 5, 'q', 100);
    sl_wire_msg m;
    assert_int_equal(write(p.peer, msg, 50), 50);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_int_equal(sl_take_msg(&p.s, 1000, &m), SL_TAKE_MORE); /* room made for the rest */
    assert_int_equal(write(p.peer, msg + 50, 55), 55);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_int_equal(sl_take_msg(&p.s, 1000, &m), SL_TAKE_OK);
    assert_int_equal(m.type, 'Q');
    assert_int_equal(m.len, 100);
    assert_int_equal(m.body[99], 'q');
    assert_int_equal(sl_take_msg(&p.s, 1000, &m), SL_TAKE_MORE); /* nothing left */
    /* a length word below 4, and one above the limit */
    uint8_t bad[5] = {'p', 0, 0, 0, 3};
    assert_int_equal(write(p.peer, bad, 5), 5);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_int_equal(sl_take_msg(&p.s, 1000, &m), SL_TAKE_BAD_LENGTH);
    close_pair(&p);
    open_pair(&p);
    uint8_t huge[5] = {'p', 0, 1, 0, 0};
    assert_int_equal(write(p.peer, huge, 5), 5);
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_int_equal(sl_take_msg(&p.s, 1000, &m), SL_TAKE_BAD_LENGTH);
    close_pair(&p);
}

static void test_idle_and_open_sees_data_and_hangups(void **state)
{
    (void)state;
    pair p;
    open_pair(&p);
    assert_true(sl_stream_idle_and_open(&p.s));
    assert_int_equal(write(p.peer, "E", 1), 1); /* a server's FATAL while parked */
    assert_false(sl_stream_idle_and_open(&p.s));
    close_pair(&p);
    open_pair(&p);
    close(p.peer);
    assert_false(sl_stream_idle_and_open(&p.s));
    sl_stream_close(&p.s, NULL);
}

static int closed_calls;
static void count_closed(sl_stream *s)
{
    (void)s;
    closed_calls++;
}

/* A closing stream gives its buffers back at once, not in the loop's closing phase: 10,000 clients
 * whose Terminates are read in one turn of the loop must not hold a buffer each until its end. */
static void test_close_returns_the_buffers_before_the_closing_phase(void **state)
{
    (void)state;
    pair p;
    open_pair(&p);
    assert_int_equal(uv_loop_init(&fake_worker.loop), 0);
    assert_true(sl_stream_attach(&p.s, &fake_worker, NULL));
    assert_int_equal(write(p.peer, "X\0\0\0\4", 5), 5); /* a Terminate */
    assert_int_equal(sl_stream_read(&p.s), SL_IO_OK);
    assert_non_null(p.s.buf);
    sl_pb_bytes(&p.s.out, "unsent", 6);
    uint32_t cached = fake_worker.buf_free_n;
    closed_calls = 0;
    sl_stream_close(&p.s, count_closed);
    assert_null(p.s.buf);
    assert_null(p.s.out.data);
    assert_int_equal(fake_worker.buf_free_n, cached + 1); /* back in the worker's cache */
    assert_int_equal(closed_calls, 0);                   /* the handle is still closing */
    assert_int_equal(uv_run(&fake_worker.loop, UV_RUN_NOWAIT), 0);
    assert_int_equal(closed_calls, 1);
    assert_int_equal(p.s.fd, -1);
    assert_int_equal(uv_loop_close(&fake_worker.loop), 0);
    close(p.peer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_read_then_again),
        cmocka_unit_test(test_end_of_file),
        cmocka_unit_test(test_full_buffer_waits_for_the_parser),
        cmocka_unit_test(test_bulk_reads_use_a_bigger_buffer_until_drained),
        cmocka_unit_test(test_partial_writes_keep_order_and_finish_later),
        cmocka_unit_test(test_write_to_a_closed_peer_is_an_error),
        cmocka_unit_test(test_whole_messages_are_taken_one_at_a_time),
        cmocka_unit_test(test_idle_and_open_sees_data_and_hangups),
        cmocka_unit_test(test_close_returns_the_buffers_before_the_closing_phase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
