/*
 * proxy — the per-connection state machine of a worker (agent-internal header).
 *
 * A client connection reads a request head (http1.h), decides faults, then forwards the
 * head (hop-by-hop fields removed, Via / X-Forwarded-For / X-Request-Id / traceparent
 * set) and the body bytes verbatim to an upstream connection from the worker's keep-alive
 * pool, and relays the response back the same way. One request at a time per client
 * connection: pipelined requests wait in the input buffer until the previous response is
 * complete (RFC 9112 §9.3.2 requires answers in order anyway).
 *
 *   client fd ──read──► conn.in ──(head rewritten, body verbatim)──► up.out ──write──► upstream
 *   client fd ◄─write── conn.out ◄─(head rewritten, body verbatim)── up.in ◄──read─── upstream
 *
 * Backpressure: a side stops reading while the other side's output buffer holds more than
 * PROXY_HIGH_WATER bytes, so a slow client or upstream costs bounded memory, not threads.
 * Every buffer has a hard cap; every wait has a timer (header, idle, connect, upstream).
 */
#ifndef AGENT_PROXY_H
#define AGENT_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "evloop.h"
#include "faults.h"
#include "http1.h"
#include "http_cache.h"
#include "limiter.h"
#include "ratelimit.h"
#include "spans.h"
#include "stats.h"
#include "traceparent.h"

#define PROXY_HIGH_WATER (256 * 1024)
#define PROXY_BODY_CHUNK (64 * 1024)     /* room beyond the head for body bytes */
#define PROXY_REPLAY_MAX (64 * 1024)     /* request bytes kept to resend on a stale pool conn */
#define PROXY_IDLE_POOL_MAX 64           /* idle upstream connections per worker */
#define PROXY_UPSTREAM_IDLE_MS 20000     /* close pooled upstream connections idle this long */
#define PROXY_REQUEST_ID_MAX 65

struct iobuf {
    char *data;
    size_t off; /* first unconsumed byte */
    size_t len; /* end of valid bytes */
    size_t cap;
    size_t max; /* hard bound */
};

enum conn_state {
    CONN_HEAD,        /* reading a request head (or idle between requests) */
    CONN_LIMIT,       /* waiting for the rate limiter's Redis answer */
    CONN_CACHE_WAIT,  /* another request is fetching this cache key: wait for it */
    CONN_DELAY,       /* a delay fault is holding the request */
    CONN_FORWARD,     /* request forwarded; relaying until the response completes */
    CONN_BLACKHOLE,   /* a blackhole fault: no answer, ever */
    CONN_CLOSING,     /* flushing the last bytes, then close */
};

struct upconn;
struct limit_wait;

/* One policy's say about the request in progress (limiter.c). */
struct limit_verdict {
    const struct policy *p;
    struct rl_decision d;
    bool decided;
    bool store_error;
};

struct worker_core;

struct conn {
    struct worker_core *wc;
    int fd;
    struct conn *prev, *next;
    enum conn_state state;
    struct iobuf in, out;
    struct http1_parser req;
    struct http1_header *fields;
    uint64_t timer;
    bool close_after;   /* answer with Connection: close and close once flushed */
    bool head_consumed; /* the request head has left c->in (forwarded or answered) */
    bool req_body_done; /* every request byte has gone to the upstream */
    bool client_eof;
    struct upconn *up;
    char peer_ip[64];

    /* the request in progress */
    uint64_t start_ns, sent_ns;
    unsigned route;
    int status;
    uint64_t bytes_in, bytes_out;
    bool faulted, upstream_error, upstream_timeout, rejected, retried, resp_started;
    /* gateway: retries on other replicas, the budget's accounting, the hash key */
    bool gw_counted, gw_idempotent;
    unsigned gw_retries;
    char gw_key[64];
    size_t gw_key_len;
    bool http10;
    struct fault_decision fault;
    struct trace_ctx trace;   /* trace id + our span id (sent upstream as parent) */
    uint8_t parent_id[8];     /* the caller's span, zero when we started the trace */
    char request_id[PROXY_REQUEST_ID_MAX];
    char method[16];
    char path[SPAN_ROUTE_MAX];
    /* rate limiting (limiter.c): the set the verdicts point into is held until the end */
    struct policy_set *pset;
    struct limit_verdict lv[LIMITS_PER_REQUEST];
    unsigned nlv;
    struct limit_wait *lw;
    uint64_t limited_retry_s; /* Retry-After of a 429 */
    /* response cache (respcache.c); rc_key NULL when the cache is off */
    char *rc_key;
    int rc_method;            /* enum hc_method */
    int rc_xcache;            /* enum hc_xcache */
    int64_t rc_request_s;
    uint32_t rc_keep_s;
    struct hc_request rc_req;
    const struct hc_policy *rc_policy; /* the route's rule (--cache-rules), or the default */
    struct iobuf *rc_capture; /* the response being stored */
    bool rc_filler;           /* others wait for this request's answer (miss coalescing) */
    bool rc_waiting;          /* this request waits for another's (CONN_CACHE_WAIT) */
    bool rc_no_coalesce;      /* retrying after a wait: go upstream, do not wait again */
    char *rc_validators;      /* revalidating: our conditional lines replace the client's */
    struct tier_ticket *rc_ticket; /* a shared-tier GET in flight */
    bool rc_tier_done;        /* the shared tier was asked for this request */
};

/* A connection another worker's fill released (respcache.c → the worker's mailbox). */
struct conn_msg {
    struct conn *c;
    struct conn_msg *next;
};

struct upconn {
    struct worker_core *wc;
    int fd;
    struct conn *client;      /* NULL while idle in the pool */
    struct upconn *next_idle;
    bool connecting, reused, replayable, got_bytes, head_done, decode;
    int slot;                 /* gateway: the upstream's slot (gateway.h); -1 sidecar */
    bool reported;            /* gateway: this attempt's outcome went to gateway_outcome */
    uint64_t attempt_ns;
    const char *host;         /* Host for a request without one */
    uint64_t timer;
    uint64_t idle_since_ms;
    struct iobuf out, in;
    struct http1_parser resp;
    struct http1_header *fields;
};

/* worker.c gives proxy.c these: */
struct worker_core {
    struct agent *agent;
    struct evloop *loop;
    struct worker_stats *stats;
    struct span_buffer *spans;
    struct fault_set faults; /* the worker's copy */
    uint64_t faults_version;
    struct conn *conns;      /* list of open client connections */
    unsigned nconns;
    struct upconn *idle;     /* pool of idle upstream connections */
    unsigned nidle;
    bool quiescing;
    struct http1_limits req_limits, resp_limits;
    struct policy_set *policies; /* the worker's reference to the current set */
    uint64_t policies_gen;
    struct rl_redis *rl_redis;   /* NULL without --redis */
    struct evredis *redis;       /* the worker's own async Redis connection */
    struct evredis *cache_redis; /* --cache-redis: the response cache's shared tier */
    struct gw_worker *gw;        /* --role gateway: this worker's balancer */
    int wake_fd;                 /* eventfd: other threads post to the mailbox, then write */
    pthread_mutex_t mbox_lock;
    struct conn_msg *mbox;       /* connections to resume (miss coalescing) */
    unsigned live_agents;        /* last value given to rl_redis_set_agents */
};

bool iobuf_printf(struct iobuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool iobuf_append(struct iobuf *b, const void *p, size_t n);

/* limiter.c calls back into proxy.c when a Redis decision completed the set. */
void proxy_limits_done(struct conn *c);
/* A coalesced request was released: look the cache up again, else go upstream. */
void proxy_cache_resume(struct conn *c);
/* The shared tier answered (respcache.c): look the cache up again. */
void proxy_cache_retry(struct conn *c);
/* The answer is complete in c->out (respcache.c): finish the request. May close c. */
void proxy_answered(struct conn *c, int status);
/* Answer from the agent itself (problem+json) — limiter.c uses it for 429. */
void proxy_answer(struct conn *c, int status, const char *slug, const char *title,
                  const char *detail, bool close);

/* A new client connection (accepted, non-blocking). */
void proxy_conn_open(struct worker_core *wc, int fd, const char *peer_ip);
/* Close everything (shutdown). */
void proxy_close_all(struct worker_core *wc);
/* Quiescing: close idle client connections now, the others after their response. */
void proxy_quiesce(struct worker_core *wc);

#endif
