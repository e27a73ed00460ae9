/* auth_rules.c - the authentication rules a config snapshot carries: auth_hba_file and
 * auth_ident_file loaded for auth_type hba, auth_ldap_options turned into one ldap rule for auth_type
 * ldap. Loaded at start, by RELOAD and by a SET of one of those settings; shared by clones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"
#include "config/hba.h"
#include "config/ident.h"

/* auth_type ldap: the same checks and options as an ldap line of pg_hba.conf, for every connection. */
static sl_hba *ldap_rules(const char *options, char *err, size_t errlen)
{
    size_t n = strlen(options) * 2 + 64;
    char *text = malloc(n);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(text, n, "local all all ldap %s\nhost all all all ldap %s\n", options, options);
    sl_hba *h = sl_hba_parse_buffer(text, strlen(text), "auth_ldap_options", NULL, err, errlen);
    free(text);
    return h;
}

bool sl_config_load_auth_rules(sl_config *c, char *err, size_t errlen)
{
    sl_hba *hba = NULL;
    sl_ident *ident = NULL;
    if (c->auth_type == SL_AUTH_HBA) {
        if (!c->auth_hba_file || !*c->auth_hba_file) {
            snprintf(err, errlen, "auth_type hba needs auth_hba_file");
            return false;
        }
        hba = sl_hba_load(c->auth_hba_file, err, errlen);
        if (!hba) return false;
        if (c->auth_ident_file && *c->auth_ident_file) {
            ident = sl_ident_load(c->auth_ident_file, err, errlen);
            if (!ident) {
                sl_hba_unref(hba);
                return false;
            }
        }
        if (!sl_hba_check_maps(hba, ident, err, errlen)) {
            sl_hba_unref(hba);
            sl_ident_unref(ident);
            return false;
        }
    } else if (c->auth_type == SL_AUTH_LDAP) {
        if (!c->auth_ldap_options || !*c->auth_ldap_options) {
            snprintf(err, errlen, "auth_type ldap needs auth_ldap_options (e.g. ldapserver=... ldapbasedn=...)");
            return false;
        }
        hba = ldap_rules(c->auth_ldap_options, err, errlen);
        if (!hba) return false;
    }
    sl_hba_unref(c->hba);
    sl_ident_unref(c->ident);
    c->hba = hba;
    c->ident = ident;
    return true;
}
