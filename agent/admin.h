/*
 * admin — the agent's admin API (DESIGN §4.1) on its own libmicrohttpd listener, loopback
 * by default. Reads are open; every mutation needs "Authorization: Bearer <admin token>",
 * and with no token configured mutations are refused (403), so an agent started without
 * one can be watched but not changed.
 */
#ifndef AGENT_ADMIN_H
#define AGENT_ADMIN_H

#include "agent.h"

int admin_start(struct agent *a, char err[256]);
void admin_stop(struct agent *a);
/* The /v1/stats document (also what the control plane polls). New reference. */
json_t *admin_stats_json(struct agent *a);

#endif
