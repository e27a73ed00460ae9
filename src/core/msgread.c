/* msgread.c - one whole message at a time off a stream (see msgread.h). */
#include "core/msgread.h"

sl_take_status sl_take_msg(sl_stream *s, uint32_t max, sl_wire_msg *m)
{
    uint32_t have = s->end - s->pos;
    if (have < 5) return SL_TAKE_MORE;
    uint32_t len = sl_get_u32(s->buf + s->pos + 1);
    if (len < 4 || len > max) return SL_TAKE_BAD_LENGTH;
    if (have < len + 1) return sl_stream_make_room(s, len + 1 - have, max + 1) ? SL_TAKE_MORE : SL_TAKE_NOMEM;
    m->type = (char)s->buf[s->pos];
    m->body = s->buf + s->pos + 5;
    m->len = len - 4;
    s->pos += len + 1;
    s->parse = s->pos;
    return SL_TAKE_OK;
}
