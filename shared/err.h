/*
 * err — the one error vocabulary of sluice (STYLE.md "Errors and memory").
 *
 * Functions that act return 0 (SL_OK) or a negative code from SL_ERR_MAP; lookups return
 * NULL/false instead. The X-macro gives each code its name and message, so adding a code
 * is one line here and nothing else.
 */
#ifndef SLUICE_ERR_H
#define SLUICE_ERR_H

#define SL_ERR_MAP(X)                                                                      \
    X(NOMEM, "out of memory")                                                              \
    X(INVAL, "invalid argument")                                                           \
    X(RANGE, "value out of range")                                                         \
    X(TOOBIG, "too large")                                                                 \
    X(PARSE, "malformed input")                                                            \
    X(IO, "input/output error")                                                            \
    X(TIMEOUT, "timed out")                                                                \
    X(CONNECT, "connection failed")                                                        \
    X(STORE, "store unavailable")                                                          \
    X(NOTFOUND, "not found")                                                               \
    X(EXISTS, "already exists")                                                            \
    X(GONE, "gone")                                                                        \
    X(CONFLICT, "conflict")                                                                \
    X(AUTH, "authentication failed")                                                       \
    X(FORBIDDEN, "forbidden")                                                              \
    X(JWT_MALFORMED, "token is malformed")                                                 \
    X(JWT_ALG, "token algorithm not allowed")                                              \
    X(JWT_SIGNATURE, "token signature does not verify")                                    \
    X(JWT_EXPIRED, "token has expired")                                                    \
    X(JWT_NOT_YET, "token is not valid yet")                                               \
    X(CRYPTO, "cryptography failure")

enum sl_err {
    SL_OK = 0,
#define SL_ERR_ENUM(name, msg) SL_E##name,
    SL_ERR_FIRST_ = -1000,
    SL_ERR_MAP(SL_ERR_ENUM) SL_ERR_LAST_
#undef SL_ERR_ENUM
};

/* Message for a code from SL_ERR_MAP ("ok" for 0, "unknown error" otherwise). */
const char *err_str(int err);
/* Symbolic name ("SL_ENOMEM"), for logs and tests. */
const char *err_name(int err);

#endif
