/*
 * evloop_curl — libcurl's multi interface on an evloop (evloop.h): the socket adapter
 * (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION + curl_multi_socket_action), so any number of
 * HTTP transfers run in parallel on one thread with no extra threads or polling.
 *
 * Where it sits: the control plane polls every agent's admin API in parallel, the worker
 * delivers webhooks, the load generator drives requests; each holds one struct evcurl on
 * its loop and adds ready-made easy handles to it.
 *
 * Contract:
 *  - The caller owns every easy handle and sets its options (URL, timeouts: always set
 *    CURLOPT_TIMEOUT_MS / CURLOPT_CONNECTTIMEOUT_MS, DESIGN.md §3). evcurl_add sets
 *    CURLOPT_NOSIGNAL and uses CURLOPT_PRIVATE while the handle is added: do not touch it.
 *  - Every evcurl_add that returns 0 calls its callback exactly once, from the loop and
 *    never inside evcurl_add: cb(easy, result, arg) with libcurl's result, after the
 *    handle was removed from the multi handle, so the callback may read CURLINFO, clean
 *    the handle up, or add it again (that reuses its connection: keep-alive). Exceptions:
 *    evcurl_remove (no callback: the caller cancelled) and evcurl_free (callback with
 *    CURLE_ABORTED_BY_CALLBACK, inside evcurl_free, so callers can free their state).
 *  - Done callbacks may call evcurl_add, evcurl_remove and evcurl_free. libcurl's own
 *    callbacks (write, header, progress) must not call any evcurl function: libcurl
 *    forbids multi calls from inside them. Defer (evloop_defer) instead.
 *  - Bounded: at most EVCURL_TRANSFERS_MAX transfers at a time (SL_ETOOBIG beyond);
 *    libcurl's connection cache is its own (CURLMOPT_MAXCONNECTS).
 *  - Sockets are watched level-triggered on the loop; a timer mirrors libcurl's single
 *    timeout. Name resolution uses libcurl's resolver (threaded in Debian's build).
 *
 * Ownership and threading: one evcurl per loop thread; free it before the loop. Not
 * thread-safe.
 */
#ifndef SLUICE_EVLOOP_CURL_H
#define SLUICE_EVLOOP_CURL_H

#include <stdint.h>

#include <curl/curl.h>

#include "evloop.h"

#define EVCURL_TRANSFERS_MAX 65536

struct evcurl;

typedef void (*evcurl_done_fn)(CURL *easy, CURLcode result, void *arg);

struct evcurl_stats {
    uint64_t added;     /* transfers accepted by evcurl_add */
    uint64_t completed; /* done callbacks with CURLE_OK */
    uint64_t failed;    /* done callbacks with another result */
    uint64_t cancelled; /* evcurl_remove */
};

/* A multi handle on loop. NULL with a message in err (may be NULL) on failure. Call
 * curl_global_init once at program start before any thread makes one. */
struct evcurl *evcurl_new(struct evloop *loop, char err[128]);
/* Abort every transfer (callbacks with CURLE_ABORTED_BY_CALLBACK) and free. NULL: no-op. */
void evcurl_free(struct evcurl *ec);

/* Start easy; cb(easy, result, arg) when it ends. SL_EINVAL (NULL arguments, or libcurl
 * refuses the handle, e.g. it is already added somewhere), SL_ETOOBIG, SL_ENOMEM. */
int evcurl_add(struct evcurl *ec, CURL *easy, evcurl_done_fn cb, void *arg);
/* Stop a transfer without calling its callback. SL_ENOTFOUND if easy is not running here. */
int evcurl_remove(struct evcurl *ec, CURL *easy);
/* Keep up to n idle connections for reuse (CURLMOPT_MAXCONNECTS; libcurl's default is
 * 4 × the transfers running, which closes most of them between a poller's sweeps). */
void evcurl_set_max_connects(struct evcurl *ec, long n);
/* Transfers added and not yet done. */
unsigned evcurl_running(const struct evcurl *ec);
void evcurl_get_stats(const struct evcurl *ec, struct evcurl_stats *out);

#endif
