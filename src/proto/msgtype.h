/* msgtype.h - the type bytes of PostgreSQL v3 messages, by name. Frontend (client to server) and
 * backend (server to client) types share letters with different meanings, hence two sets. */
#ifndef SL_MSGTYPE_H
#define SL_MSGTYPE_H

/* frontend: sent by clients */
enum {
    SL_FE_BIND = 'B',
    SL_FE_CLOSE = 'C',
    SL_FE_COPY_DATA = 'd',
    SL_FE_COPY_DONE = 'c',
    SL_FE_COPY_FAIL = 'f',
    SL_FE_DESCRIBE = 'D',
    SL_FE_EXECUTE = 'E',
    SL_FE_FLUSH = 'H',
    SL_FE_FUNCTION_CALL = 'F',
    SL_FE_PARSE = 'P',
    SL_FE_PASSWORD = 'p', /* PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse */
    SL_FE_QUERY = 'Q',
    SL_FE_SYNC = 'S',
    SL_FE_TERMINATE = 'X',
};

/* backend: sent by servers */
enum {
    SL_BE_AUTH = 'R',
    SL_BE_BACKEND_KEY = 'K',
    SL_BE_BIND_COMPLETE = '2',
    SL_BE_CLOSE_COMPLETE = '3',
    SL_BE_COMMAND_COMPLETE = 'C',
    SL_BE_COPY_BOTH = 'W',
    SL_BE_COPY_DATA = 'd',
    SL_BE_COPY_DONE = 'c',
    SL_BE_COPY_IN = 'G',
    SL_BE_COPY_OUT = 'H',
    SL_BE_DATA_ROW = 'D',
    SL_BE_EMPTY_QUERY = 'I',
    SL_BE_ERROR = 'E',
    SL_BE_FUNCTION_RESULT = 'V',
    SL_BE_NEGOTIATE_VERSION = 'v',
    SL_BE_NO_DATA = 'n',
    SL_BE_NOTICE = 'N',
    SL_BE_NOTIFICATION = 'A',
    SL_BE_PARAM_DESCRIPTION = 't',
    SL_BE_PARAM_STATUS = 'S',
    SL_BE_PARSE_COMPLETE = '1',
    SL_BE_PORTAL_SUSPENDED = 's',
    SL_BE_READY = 'Z',
    SL_BE_ROW_DESCRIPTION = 'T',
};

/* What a Describe or Close names. */
enum { SL_TARGET_STATEMENT = 'S', SL_TARGET_PORTAL = 'P' };

/* Transaction status in ReadyForQuery. */
enum { SL_XACT_IDLE = 'I', SL_XACT_BLOCK = 'T', SL_XACT_FAILED = 'E' };

/* Fields of ErrorResponse and NoticeResponse. */
enum {
    SL_ERRF_SEVERITY = 'S',
    SL_ERRF_SEVERITY_NONLOCALIZED = 'V',
    SL_ERRF_CODE = 'C',
    SL_ERRF_MESSAGE = 'M',
    SL_ERRF_DETAIL = 'D',
};

/* Authentication request codes (the first word of an 'R' message). */
enum {
    SL_AUTH_REQ_OK = 0,
    SL_AUTH_REQ_CLEARTEXT = 3,
    SL_AUTH_REQ_MD5 = 5,
    SL_AUTH_REQ_SASL = 10,
    SL_AUTH_REQ_SASL_CONTINUE = 11,
    SL_AUTH_REQ_SASL_FINAL = 12,
};

#endif
