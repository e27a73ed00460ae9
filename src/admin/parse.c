/* parse.c - the admin console's little grammar: a query string split into statements, each one
 * `WORD [ARG]` or `SET name {=|TO} value`, words case-insensitive, "quoted" and 'string' forms. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin_int.h"

/* Skip a comment starting at q[i]; returns the index after it (i itself when none starts there). */
static size_t skip_comment(const char *q, size_t i, size_t end)
{
    if (i + 1 < end && q[i] == '-' && q[i + 1] == '-') {
        while (i < end && q[i] != '\n') i++;
        return i;
    }
    if (i + 1 < end && q[i] == '/' && q[i + 1] == '*') {
        i += 2;
        while (i + 1 < end && !(q[i] == '*' && q[i + 1] == '/')) i++;
        return i + 1 < end ? i + 2 : end;
    }
    return i;
}

static size_t skip_blank(const char *q, size_t i, size_t end)
{
    for (;;) {
        while (i < end && isspace((unsigned char)q[i])) i++;
        size_t j = skip_comment(q, i, end);
        if (j == i) return i;
        i = j;
    }
}

/* End of the quoted token starting at q[i] (quote char q[i], doubled quote inside = literal). */
static size_t skip_quoted(const char *q, size_t i, size_t end)
{
    char quote = q[i++];
    while (i < end) {
        if (q[i] == quote) {
            if (i + 1 < end && q[i + 1] == quote) i += 2;
            else return i + 1;
        } else {
            i++;
        }
    }
    return end;
}

bool adm_next_statement(const char *q, size_t *off, size_t *start, size_t *len)
{
    size_t end = strlen(q), i = *off;
    for (;;) {
        i = skip_blank(q, i, end);
        if (i >= end) {
            *off = end;
            return false;
        }
        if (q[i] == ';') {
            i++;
            continue;
        }
        size_t s = i;
        while (i < end && q[i] != ';') {
            size_t j = skip_comment(q, i, end);
            if (j != i) i = j;
            else if (q[i] == '\'' || q[i] == '"') i = skip_quoted(q, i, end);
            else i++;
        }
        *start = s;
        *len = i - s;
        *off = i < end ? i + 1 : end;
        return true;
    }
}

typedef enum { TOK_END, TOK_WORD, TOK_IDENT, TOK_STRING, TOK_EQ, TOK_BAD } tok_type;

typedef struct lexer {
    const char *q;
    size_t i, end;
} lexer;

/* Next token; its text (quotes removed, doubled quotes undone) into buf. */
static tok_type next_token(lexer *lx, char *buf, size_t blen)
{
    lx->i = skip_blank(lx->q, lx->i, lx->end);
    buf[0] = 0;
    if (lx->i >= lx->end) return TOK_END;
    char ch = lx->q[lx->i];
    if (ch == '=') {
        lx->i++;
        return TOK_EQ;
    }
    size_t o = 0;
    if (ch == '\'' || ch == '"') {
        size_t e = skip_quoted(lx->q, lx->i, lx->end);
        if (e > lx->end || lx->q[e - 1] != ch || e - lx->i < 2) return TOK_BAD;
        for (size_t k = lx->i + 1; k < e - 1 && o + 1 < blen; k++) {
            buf[o++] = lx->q[k];
            if (lx->q[k] == ch) k++;
        }
        buf[o] = 0;
        lx->i = e;
        return ch == '"' ? TOK_IDENT : TOK_STRING;
    }
    while (lx->i < lx->end) {
        ch = lx->q[lx->i];
        if (isspace((unsigned char)ch) || ch == '=' || ch == '\'' || ch == '"') break;
        if (skip_comment(lx->q, lx->i, lx->end) != lx->i) break;
        if (o + 1 < blen) buf[o++] = ch;
        lx->i++;
    }
    buf[o] = 0;
    return TOK_WORD;
}

static bool is_keyword(const char *w)
{
    if (!*w) return false;
    for (const char *p = w; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') return false;
    return true;
}

static void lower(char *s)
{
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

static bool syntax_error(const adm_cmd *cmd, char *err, size_t errlen)
{
    snprintf(err, errlen, "invalid command '%s', use SHOW HELP;", cmd->text);
    return false;
}

static bool parse_set(lexer *lx, adm_cmd *cmd, char *err, size_t errlen)
{
    char tok[1024];
    tok_type t = next_token(lx, cmd->arg, sizeof(cmd->arg));
    if ((t != TOK_WORD && t != TOK_IDENT) || !cmd->arg[0]) return syntax_error(cmd, err, errlen);
    t = next_token(lx, tok, sizeof(tok));
    if (t == TOK_WORD) lower(tok);
    if (t != TOK_EQ && !(t == TOK_WORD && !strcmp(tok, "to"))) return syntax_error(cmd, err, errlen);
    t = next_token(lx, cmd->value, sizeof(cmd->value));
    if (t != TOK_WORD && t != TOK_STRING && t != TOK_IDENT) return syntax_error(cmd, err, errlen);
    if (next_token(lx, tok, sizeof(tok)) != TOK_END) return syntax_error(cmd, err, errlen);
    cmd->kind = ADM_CMD_SET;
    return true;
}

bool adm_parse(const char *stmt, size_t len, adm_cmd *cmd, char *err, size_t errlen)
{
    memset(cmd, 0, sizeof(*cmd));
    size_t tl = len < sizeof(cmd->text) - 1 ? len : sizeof(cmd->text) - 1;
    memcpy(cmd->text, stmt, tl);
    cmd->text[tl] = 0;
    while (tl > 0 && isspace((unsigned char)cmd->text[tl - 1])) cmd->text[--tl] = 0;
    lexer lx = {.q = stmt, .i = 0, .end = len};
    if (next_token(&lx, cmd->verb, sizeof(cmd->verb)) != TOK_WORD || !is_keyword(cmd->verb))
        return syntax_error(cmd, err, errlen);
    lower(cmd->verb);
    if (!strcmp(cmd->verb, "set")) return parse_set(&lx, cmd, err, errlen);
    cmd->kind = ADM_CMD_WORDS;
    char tok[256];
    tok_type t = next_token(&lx, cmd->arg, sizeof(cmd->arg));
    if (t == TOK_END) return true;
    if (t != TOK_WORD && t != TOK_IDENT) return syntax_error(cmd, err, errlen);
    if (next_token(&lx, tok, sizeof(tok)) != TOK_END) return syntax_error(cmd, err, errlen);
    return true;
}
