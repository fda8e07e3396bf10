#include "routes.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json.h"

#define SEGMENTS_MAX 16

struct route_entry {
    char name[ROUTE_NAME_MAX];
    unsigned nseg;
    struct {
        unsigned off, len; /* into name; len 0 never happens */
        bool capture;
    } seg[SEGMENTS_MAX];
};

struct route_table {
    bool learned;
    pthread_mutex_t lock;   /* learning only */
    atomic_uint count;      /* entries[0..count) are published */
    struct route_entry entries[ROUTES_MAX];
};

static struct route_table *table_new(bool learned)
{
    struct route_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->learned = learned;
    pthread_mutex_init(&t->lock, NULL);
    snprintf(t->entries[0].name, ROUTE_NAME_MAX, "other");
    atomic_store(&t->count, 1);
    return t;
}

struct route_table *routes_new_learned(void)
{
    return table_new(true);
}

void routes_free(struct route_table *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* Splits a template into segments; false when malformed. */
static bool entry_parse(struct route_entry *e, const char *tmpl)
{
    size_t n = strlen(tmpl);
    if (n == 0 || n >= ROUTE_NAME_MAX || tmpl[0] != '/')
        return false;
    memcpy(e->name, tmpl, n + 1);
    e->nseg = 0;
    for (size_t i = 1; i <= n;) {
        size_t len = strcspn(e->name + i, "/");
        if (len == 0 && i < n)
            return false; /* "//" */
        if (len == 0)
            break; /* trailing slash or "/" */
        if (e->nseg == SEGMENTS_MAX)
            return false;
        bool cap = e->name[i] == '{' && e->name[i + len - 1] == '}' && len > 2;
        if (!cap && (memchr(e->name + i, '{', len) || memchr(e->name + i, '}', len)))
            return false;
        e->seg[e->nseg].off = (unsigned)i;
        e->seg[e->nseg].len = (unsigned)len;
        e->seg[e->nseg].capture = cap;
        e->nseg++;
        i += len + 1;
    }
    return true;
}

struct route_table *routes_load(const char *path, char err[256])
{
    json_t *doc;
    char jerr[JSON_ERR_MAX];
    if (json_parse_file(path, &doc, jerr)) {
        snprintf(err, 256, "--routes: %s", jerr);
        return NULL;
    }
    json_t *list = json_is_array(doc) ? doc : json_object_get(doc, "routes");
    struct route_table *t = NULL;
    if (!json_is_array(list) || json_array_size(list) >= ROUTES_MAX) {
        snprintf(err, 256, "--routes: %s: expected {\"routes\": [\"/path/{param}\", ...]} with at "
                 "most %d routes", path, ROUTES_MAX - 1);
        goto out;
    }
    t = table_new(false);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *s = json_string_value(v);
        if (!s || !entry_parse(&t->entries[i + 1], s)) {
            snprintf(err, 256, "--routes: %s: routes[%zu] is not a path template like "
                     "\"/v1/links/{code}\"", path, i);
            routes_free(t);
            t = NULL;
            goto out;
        }
    }
    atomic_store(&t->count, (unsigned)json_array_size(list) + 1);
out:
    json_decref(doc);
    return t;
}

/* Compares one template against the path's segments; returns a specificity key (bit i
 * set when segment i is a literal) or -1 when it does not match. */
static long entry_match(const struct route_entry *e, const char *path, size_t len)
{
    size_t i = 1;
    long key = 0;
    for (unsigned s = 0; s < e->nseg; s++) {
        if (i > len)
            return -1;
        const char *seg = path + i;
        size_t slen = 0;
        while (i + slen < len && path[i + slen] != '/')
            slen++;
        if (slen == 0)
            return -1;
        if (!e->seg[s].capture) {
            if (slen != e->seg[s].len || memcmp(seg, e->name + e->seg[s].off, slen) != 0)
                return -1;
            key |= 1L << (SEGMENTS_MAX - 1 - s);
        }
        i += slen + 1;
    }
    return i >= len ? key : -1; /* no segments left over ("/a/" matches "/a") */
}

static unsigned match_templates(const struct route_table *t, const char *path, size_t len)
{
    unsigned best = 0, n = atomic_load_explicit(&t->count, memory_order_acquire);
    long best_key = -1;
    for (unsigned k = 1; k < n; k++) {
        long key = entry_match(&t->entries[k], path, len);
        if (key > best_key) {
            best_key = key;
            best = k;
        }
    }
    return best;
}

/* "/v1/links/x" → "/v1/..."; "/healthz" → "/healthz"; "/" → "/". */
static void learned_name(const char *path, size_t len, char out[ROUTE_NAME_MAX])
{
    size_t seg = 1;
    while (seg < len && path[seg] != '/')
        seg++;
    bool deeper = seg + 1 < len;
    if (seg > ROUTE_NAME_MAX - 5)
        seg = ROUTE_NAME_MAX - 5;
    memcpy(out, path, seg);
    strcpy(out + seg, deeper ? "/..." : "");
}

static unsigned match_learned(struct route_table *t, const char *path, size_t len)
{
    char name[ROUTE_NAME_MAX];
    learned_name(path, len, name);
    unsigned n = atomic_load_explicit(&t->count, memory_order_acquire);
    for (unsigned k = 1; k < n; k++)
        if (strcmp(t->entries[k].name, name) == 0)
            return k;
    pthread_mutex_lock(&t->lock);
    n = atomic_load_explicit(&t->count, memory_order_relaxed);
    unsigned found = 0;
    for (unsigned k = 1; k < n && !found; k++)
        if (strcmp(t->entries[k].name, name) == 0)
            found = k;
    if (!found && n < ROUTES_MAX) {
        strcpy(t->entries[n].name, name);
        atomic_store_explicit(&t->count, n + 1, memory_order_release);
        found = n;
    }
    pthread_mutex_unlock(&t->lock);
    return found;
}

unsigned routes_match(struct route_table *t, const char *path, size_t len)
{
    if (len == 0 || path[0] != '/')
        return 0;
    return t->learned ? match_learned(t, path, len) : match_templates(t, path, len);
}

const char *routes_name(const struct route_table *t, unsigned idx)
{
    return idx < atomic_load_explicit(&t->count, memory_order_acquire) ? t->entries[idx].name
                                                                       : "other";
}

unsigned routes_count(const struct route_table *t)
{
    return atomic_load_explicit(&t->count, memory_order_acquire);
}

void routes_names(const struct route_table *t, const char **out)
{
    unsigned n = routes_count(t);
    for (unsigned i = 0; i < n; i++)
        out[i] = t->entries[i].name;
}
