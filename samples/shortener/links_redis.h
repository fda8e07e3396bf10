/*
 * links_redis — the shortener's data access over hiredis (an adapter: the only shortener
 * files that run Redis commands are this one, idem.c and keys.c).
 *
 * Every function returns SL_OK or a negative code: SL_ESTORE when Redis cannot be
 * reached or answers with an error (handlers turn it into 503), SL_ENOTFOUND,
 * SL_EEXISTS. Key names are in docs/shortener.md; codes are hash tags ({CODE}) so a link
 * and its statistics share a Cluster slot and a shard.
 */
#ifndef SHORTENER_LINKS_REDIS_H
#define SHORTENER_LINKS_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "shortener.h"

#define LINKS_PAGE_MAX 100
#define LINKS_DAILY_DAYS 30

/* SET NX with the record; expiring links keep their key LINK_GONE_WINDOW_MS longer so
 * that reads can answer 410. SL_EEXISTS when the code is taken. */
int links_put(struct shortener *s, const char *code, const json_t *record, int64_t expires_ms);
/* Reads through the replica when configured and !fresh (falling back to the primary);
 * fresh reads (ownership checks before a change) always go to the primary. */
int links_get(struct shortener *s, const char *code, bool fresh, json_t **record);
/* Removes the link, its statistics and its entry in the owner's index. */
int links_delete(struct shortener *s, const char *code, const char *owner);

int links_next_seq(struct shortener *s, uint64_t *seq);
int links_index_add(struct shortener *s, const char *owner, const char *code, uint64_t seq);
/* Up to limit codes older than before_seq (0 = from the newest), newest first; *more is
 * set when another page exists. codes[i] must hold LINK_CODE_MAX bytes. */
int links_index_page(struct shortener *s, const char *owner, uint64_t before_seq,
                     size_t limit, char (*codes)[33], uint64_t *seqs, size_t *n, int *more);
int links_index_remove(struct shortener *s, const char *owner, const char *code);

/* Counts one click: total, the day's count, and the visitor in the HyperLogLog.
 * expire_at_ms (0 = none) keeps the statistics no longer than the link. *total gets the
 * clicks so far (for the link.clicked milestones). */
int links_count_click(struct shortener *s, const char *code, const char *day,
                      const char *visitor, int64_t expire_at_ms, long long *total);
/* {"clicks":N,"unique_visitors":N,"daily":{...}} for the days >= oldest_day. */
int links_stats(struct shortener *s, const char *code, const char *oldest_day, json_t **out);

#endif
