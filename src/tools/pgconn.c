/* pgconn.c - libpq connections for the tools: keyword/value targets, PGPASSWORD_FILE, short error texts. */
#include "tools/pgconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/file_util.h"

char *sl_pg_password_from_file_env(char *err, size_t errlen)
{
    const char *path = getenv("PGPASSWORD_FILE");
    if (err && errlen) err[0] = '\0';
    if (!path || !*path) return NULL;
    char *data = sl_file_read(path, NULL, err, errlen);
    if (!data) return NULL;
    data[strcspn(data, "\r\n")] = '\0';
    return data;
}

static void first_line(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ')) s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\t') *p = ' ';
}

const char *sl_pg_errmsg(PGconn *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s", c ? PQerrorMessage(c) : "out of memory");
    first_line(buf);
    return buf;
}

PGconn *sl_pg_connect(const sl_pg_target *t, char *err, size_t errlen)
{
    const char *kw[12], *val[12];
    int n = 0;
    if (t->conninfo && *t->conninfo) kw[n] = "dbname", val[n++] = t->conninfo; /* expanded (expand_dbname) */
    if (t->host) kw[n] = "host", val[n++] = t->host;
    if (t->port) kw[n] = "port", val[n++] = t->port;
    if (t->dbname) kw[n] = "dbname", val[n++] = t->dbname;
    if (t->user) kw[n] = "user", val[n++] = t->user;
    char *file_pw = NULL;
    if (t->password) {
        kw[n] = "password", val[n++] = t->password;
    } else if (!getenv("PGPASSWORD")) {
        char perr[300];
        file_pw = sl_pg_password_from_file_env(perr, sizeof(perr));
        if (!file_pw && perr[0]) {
            snprintf(err, errlen, "PGPASSWORD_FILE: %s", perr);
            return NULL;
        }
        if (file_pw) kw[n] = "password", val[n++] = file_pw;
    }
    bool has_timeout = t->conninfo && strstr(t->conninfo, "connect_timeout");
    if (!has_timeout) kw[n] = "connect_timeout", val[n++] = "10";
    kw[n] = "application_name", val[n++] = t->application_name ? t->application_name : "pgsluice";
    kw[n] = NULL, val[n] = NULL;
    PGconn *c = PQconnectdbParams(kw, val, 1);
    if (file_pw) {
        memset(file_pw, 0, strlen(file_pw));
        free(file_pw);
    }
    if (!c || PQstatus(c) != CONNECTION_OK) {
        char m[512];
        snprintf(err, errlen, "%s", sl_pg_errmsg(c, m, sizeof(m)));
        PQfinish(c);
        return NULL;
    }
    return c;
}
