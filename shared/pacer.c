#include "pacer.h"

#include "err.h"

#define NS_PER_S_MILLI ((unsigned __int128)1000000000000ull) /* ns per s, times 1000 */

/* Intended time of request first + j of segment s (rate > 0). */
static uint64_t seg_at(const struct pacer_segment *s, uint64_t j)
{
    unsigned __int128 t = s->epoch_ns + (unsigned __int128)j * NS_PER_S_MILLI / s->rate_mps;
    return t > UINT64_MAX ? UINT64_MAX : (uint64_t)t;
}

/* Requests of segment s intended at or before t and before end_ns, were the segment
 * unbounded: the j with floor(j * 10^12 / r) <= t - epoch, i.e. j * 10^12 < (t - epoch +
 * 1) * r. */
static uint64_t seg_count(const struct pacer_segment *s, uint64_t t, uint64_t end_ns)
{
    if (end_ns != PACER_NO_END) {
        if (end_ns == 0)
            return 0;
        t = t < end_ns - 1 ? t : end_ns - 1;
    }
    if (s->rate_mps == 0 || t < s->epoch_ns)
        return 0;
    unsigned __int128 x = ((unsigned __int128)(t - s->epoch_ns) + 1) * s->rate_mps;
    unsigned __int128 n = (x + NS_PER_S_MILLI - 1) / NS_PER_S_MILLI;
    return n > UINT64_MAX ? UINT64_MAX : (uint64_t)n;
}

static uint64_t clamp_rate(uint64_t rate_mps)
{
    return rate_mps > PACER_RATE_MPS_MAX ? PACER_RATE_MPS_MAX : rate_mps;
}

void pacer_init(struct pacer *p, uint64_t rate_mps, uint64_t start_ns, uint64_t end_ns)
{
    *p = (struct pacer){.nseg = 1, .end_ns = end_ns};
    p->seg[0] = (struct pacer_segment){.epoch_ns = start_ns, .rate_mps = clamp_rate(rate_mps)};
}

bool pacer_peek(const struct pacer *p, uint64_t *intended_ns)
{
    const struct pacer_segment *s = &p->seg[0];
    if (s->rate_mps == 0)
        return false;
    uint64_t t = seg_at(s, p->next - s->first);
    if (t >= p->end_ns)
        return false;
    *intended_ns = t;
    return true;
}

/* Drop segments whose requests have all been handed out. */
static void retire(struct pacer *p)
{
    unsigned done = 0;
    while (done + 1 < p->nseg && p->next >= p->seg[done + 1].first)
        done++;
    if (!done)
        return;
    for (unsigned i = done; i < p->nseg; i++)
        p->seg[i - done] = p->seg[i];
    p->nseg -= done;
}

void pacer_take(struct pacer *p)
{
    p->next++;
    retire(p);
}

uint64_t pacer_due(const struct pacer *p, uint64_t now_ns)
{
    /* Earlier segments are wholly intended before the change that ended them. */
    const struct pacer_segment *cur = &p->seg[p->nseg - 1];
    uint64_t scheduled = cur->first + seg_count(cur, now_ns, p->end_ns);
    return scheduled > p->next ? scheduled - p->next : 0;
}

int pacer_set_rate(struct pacer *p, uint64_t rate_mps, uint64_t now_ns, uint64_t *first)
{
    struct pacer_segment *cur = &p->seg[p->nseg - 1];
    uint64_t k0 = cur->first + seg_count(cur, now_ns, p->end_ns);
    if (k0 < p->next) /* handed out ahead of time: they keep theirs */
        k0 = p->next;
    if (k0 > cur->first) { /* cur keeps requests: the new rate is a new segment */
        if (p->nseg == PACER_SEGMENTS_MAX)
            return SL_ETOOBIG;
        p->last_ns = seg_at(cur, k0 - 1 - cur->first);
        cur = &p->seg[p->nseg++];
    }
    /* else nothing of cur is due: replace it (last_ns still precedes it) */
    cur->first = k0;
    cur->rate_mps = clamp_rate(rate_mps);
    if (cur->rate_mps) {
        uint64_t start =
            k0 > 0 ? p->last_ns + (uint64_t)(NS_PER_S_MILLI / cur->rate_mps) : cur->epoch_ns;
        cur->epoch_ns = start > now_ns ? start : now_ns;
    }
    retire(p);
    if (first)
        *first = k0;
    return SL_OK;
}

uint64_t pacer_taken(const struct pacer *p)
{
    return p->next;
}

uint64_t pacer_rate(const struct pacer *p)
{
    return p->seg[p->nseg - 1].rate_mps;
}
