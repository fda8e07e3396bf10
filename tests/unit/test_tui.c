/*
 * Headless TUI tests: documents and key sequences go into the model, the view draws into
 * a canvas, and the canvas (characters, and colours/attributes for the colour screens) is
 * compared with golden files under tests/golden/tui/. UPDATE_GOLDEN=1 rewrites them; a
 * rewritten golden shows in `git diff` for review.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "canvas.h"
#include "tui_keys.h"
#include "model.h"
#include "view.h"

#define GOLDEN_DIR "tests/golden/tui/"

/* One snapshot; %d is r1's requests/s (the sparklines' history). */
#define FLEET_DOC                                                                            \
    "{\"ts\":1700000000000,\"agents\":4,\"agents_up\":3,\"services\":[" \
    "{\"name\":\"shortener\",\"replicas\":[" \
    "{\"id\":\"r1\",\"role\":\"sidecar\",\"state\":\"serving\",\"up\":true,\"weight\":100,\"rps\":%d," \
    "\"error_ratio\":0.0,\"p50_ms\":1.2,\"p95_ms\":3.0,\"p99_ms\":8.5,\"in_flight\":2,\"cache_hit_ratio\":0.82," \
    "\"limited_per_s\":0,\"policy_version\":7," \
    "\"cache\":{\"enabled\":true,\"hits\":820,\"misses\":180,\"stale\":3,\"evictions\":10,\"expirations\":40," \
    "\"entries\":120,\"bytes\":512000,\"hit_ratio_window\":{\"1s\":0.8,\"10s\":0.82,\"60s\":0.81}}}," \
    "{\"id\":\"r2\",\"role\":\"sidecar\",\"state\":\"draining\",\"up\":true,\"weight\":100,\"rps\":4.5," \
    "\"error_ratio\":0.02,\"p50_ms\":1.5,\"p95_ms\":4.0,\"p99_ms\":12.0,\"in_flight\":3,\"cache_hit_ratio\":null," \
    "\"limited_per_s\":1.5,\"policy_version\":7}," \
    "{\"id\":\"r3\",\"role\":\"sidecar\",\"state\":\"down\",\"up\":false,\"weight\":100,\"rps\":null," \
    "\"error_ratio\":null,\"p50_ms\":null,\"p95_ms\":null,\"p99_ms\":null,\"in_flight\":null," \
    "\"cache_hit_ratio\":null,\"limited_per_s\":null,\"policy_version\":6}]," \
    "\"totals\":{\"rps\":24.5,\"error_ratio\":0.004,\"p50_ms\":1.3,\"p95_ms\":3.5,\"p99_ms\":9.0," \
    "\"in_flight\":5,\"cache_hit_ratio\":0.82,\"limited_per_s\":1.5,\"replicas\":3,\"replicas_up\":2}}," \
    "{\"name\":\"gateway\",\"replicas\":[" \
    "{\"id\":\"gw\",\"role\":\"gateway\",\"state\":\"serving\",\"up\":true,\"weight\":100,\"rps\":25," \
    "\"error_ratio\":0,\"p50_ms\":1.9,\"p95_ms\":4.2,\"p99_ms\":10.1,\"in_flight\":5,\"cache_hit_ratio\":null," \
    "\"limited_per_s\":0,\"policy_version\":7}]," \
    "\"totals\":{\"rps\":25,\"error_ratio\":0,\"p50_ms\":1.9,\"p95_ms\":4.2,\"p99_ms\":10.1," \
    "\"in_flight\":5,\"cache_hit_ratio\":null,\"limited_per_s\":0,\"replicas\":1,\"replicas_up\":1}}]}"


static const char limits_doc[] =
    "{\"set_version\":7,\"policies\":["
    "{\"name\":\"links-write\",\"version\":3,\"policy\":{\"name\":\"links-write\",\"scope\":\"sidecar\","
    "\"match\":{\"methods\":[\"POST\"],\"path_prefix\":\"/v1/links\"},\"key\":\"header:X-API-Key\","
    "\"algorithm\":\"token_bucket\",\"limit\":100,\"window_ms\":60000,\"burst\":20,\"store\":\"redis\"},"
    "\"convergence\":{\"version\":7,\"agents\":4,\"applied\":3}},"
    "{\"name\":\"edge\",\"version\":1,\"policy\":{\"name\":\"edge\",\"scope\":\"gateway\","
    "\"match\":{\"path_prefix\":\"/\"},\"key\":\"ip\",\"algorithm\":\"gcra\",\"limit\":50,"
    "\"window_ms\":1000,\"mode\":\"shadow\",\"store\":\"local\"},"
    "\"convergence\":{\"version\":7,\"agents\":4,\"applied\":4}}]}";

static const char slos_doc[] =
    "{\"slos\":[{\"name\":\"avail\",\"service\":\"shortener\",\"kind\":\"availability\",\"objective\":0.999,"
    "\"sli\":0.9995,\"error_budget_remaining\":0.5,\"burn_rates\":{\"5m\":0.5,\"30m\":1,\"1h\":2,"
    "\"2h\":1,\"6h\":0.8,\"1d\":0.6,\"3d\":0.5},\"alert\":\"none\",\"time_to_exhaustion_s\":null},"
    "{\"name\":\"latency\",\"service\":\"shortener\",\"kind\":\"latency\",\"objective\":0.99,"
    "\"sli\":0.95,\"error_budget_remaining\":-0.2,\"burn_rates\":{\"5m\":20,\"30m\":9,\"1h\":15,"
    "\"2h\":8,\"6h\":7,\"1d\":4,\"3d\":2},\"alert\":\"page\",\"time_to_exhaustion_s\":0}]}";

static const char traces_doc[] =
    "{\"matched\":2,\"traces\":[{\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"name\":\"GET /v1/links/{code}\","
    "\"service\":\"shortener\",\"status\":500,\"error\":true,\"slow\":false,\"complete\":true,"
    "\"duration_ms\":12.5,\"span_count\":3},{\"trace_id\":\"00f067aa0ba902b700f067aa0ba902b7\","
    "\"name\":\"POST /v1/links\",\"service\":\"gateway\",\"status\":201,\"error\":false,\"slow\":true,"
    "\"complete\":true,\"duration_ms\":812.0,\"span_count\":2}]}";

static const char trace_doc[] =
    "{\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"duration_ms\":12.5,\"span_count\":3,"
    "\"spans\":[{\"span_id\":\"a\",\"name\":\"GET /v1/links/{code}\",\"role\":\"gateway\",\"offset_ms\":0,"
    "\"duration_ms\":12.5,\"critical\":true,\"children\":[{\"span_id\":\"b\",\"name\":\"GET /v1/links/{code}\","
    "\"role\":\"sidecar\",\"offset_ms\":1.0,\"duration_ms\":10.0,\"critical\":true,\"children\":[]},"
    "{\"span_id\":\"c\",\"name\":\"cache lookup\",\"role\":\"sidecar\",\"offset_ms\":0.5,\"duration_ms\":0.3,"
    "\"critical\":false,\"children\":[]}]}]}";

static const char queues_doc[] =
    "{\"queues\":[{\"name\":\"webhooks\",\"length\":12,\"waiting\":5,\"active\":2,\"delayed\":3,\"dead\":1,"
    "\"oldest_pending_age_ms\":4200,\"counters\":{\"failed\":4},\"rates\":{\"enqueued_per_s\":2.5,"
    "\"completed_per_s\":2.0}}]}";

static const char audit_doc[] =
    "{\"records\":[{\"id\":\"2-0\",\"at\":\"2026-11-29T20:00:02.000Z\",\"who\":\"key_0123456789ab\","
    "\"action\":\"replica.drain\",\"target\":\"r2\"},{\"id\":\"1-0\",\"at\":\"2026-11-29T19:59:00.000Z\","
    "\"who\":\"key_0123456789ab\",\"action\":\"limits.put\",\"target\":\"links-write\"}]}";

static const char drills_doc[] =
    "{\"drills\":[{\"name\":\"replica-latency\",\"description\":\"300 ms on one replica\"},"
    "{\"name\":\"cache-flush\",\"description\":\"a stampede\"}],"
    "\"runs\":[{\"run\":\"replica-latency-1\",\"drill\":\"replica-latency\",\"state\":\"running\","
    "\"verdict\":null},{\"run\":\"cache-flush-2\",\"drill\":\"cache-flush\",\"state\":\"finished\","
    "\"verdict\":\"passed\"}]}";

static json_t *load(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

/* A model with every document, and 20 snapshots of history for the sparklines. */
static void fill(struct model *m, bool readonly)
{
    model_init(m, readonly, false);
    model_set_connected(m, true, "live");
    for (int i = 0; i < 20; i++) {
        char doc[8192];
        snprintf(doc, sizeof(doc), FLEET_DOC, 10 + (i * 7) % 15);
        model_set_doc(m, DOC_FLEET, load(doc), 1700000000000ULL + (uint64_t)i * 1000);
    }
    model_set_doc(m, DOC_LIMITS, load(limits_doc), 1700000020000ULL);
    model_set_doc(m, DOC_SLOS, load(slos_doc), 1700000020000ULL);
    model_set_doc(m, DOC_TRACES, load(traces_doc), 1700000020000ULL);
    model_set_doc(m, DOC_QUEUES, load(queues_doc), 1700000020000ULL);
    model_set_doc(m, DOC_AUDIT, load(audit_doc), 1700000020000ULL);
    model_set_doc(m, DOC_DRILLS, load(drills_doc), 1700000020000ULL);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

/* Compare (or, with UPDATE_GOLDEN=1, write) one golden file. */
static void golden(const char *name, const char *actual)
{
    char path[256];
    snprintf(path, sizeof(path), GOLDEN_DIR "%s", name);
    if (getenv("UPDATE_GOLDEN") && !strcmp(getenv("UPDATE_GOLDEN"), "1")) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fputs(actual, f);
        fclose(f);
        return;
    }
    char *want = slurp(path);
    if (!want)
        fail_msg("%s is missing: run UPDATE_GOLDEN=1 make test and review it", path);
    if (strcmp(want, actual) != 0)
        fail_msg("%s differs; got:\n%s", path, actual);
    free(want);
}

static void render(const struct model *m, int w, int h, const char *name, bool attrs)
{
    struct canvas *c = canvas_new(w, h);
    assert_non_null(c);
    view_draw(m, c);
    char *text = canvas_to_text(c);
    char file[128];
    snprintf(file, sizeof(file), "%s-%dx%d.txt", name, w, h);
    golden(file, text);
    free(text);
    if (attrs) {
        char *a = canvas_attrs_to_text(c);
        snprintf(file, sizeof(file), "%s-%dx%d.attrs", name, w, h);
        golden(file, a);
        free(a);
    }
    canvas_free(c);
}

static void keys(struct model *m, const char *seq)
{
    for (const char *p = seq; *p; p++)
        model_key(m, *p == '\n' ? '\n' : (unsigned char)*p);
}

static void test_every_screen_at_80x24_and_200x60(void **state)
{
    (void)state;
    static struct model m;
    fill(&m, false);
    static const char *const names[SCR_COUNT] = {"fleet", "limits", "cache", "slos",
                                                "traces", "queues", "drills", "events"};
    for (int s = 0; s < SCR_COUNT; s++) {
        model_key(&m, '1' + s);
        assert_int_equal(m.screen, s);
        render(&m, 80, 24, names[s], false);
        render(&m, 200, 60, names[s], s == SCR_FLEET || s == SCR_SLOS);
    }
    model_release(&m);
}

static void test_drain_confirm_dialog_needs_the_replica_id(void **state)
{
    (void)state;
    static struct model m;
    fill(&m, false);
    model_key(&m, TK_DOWN); /* r2 */
    model_key(&m, 'd');
    assert_int_equal(m.mode, MODE_CONFIRM);
    render(&m, 80, 24, "confirm-drain", false);
    keys(&m, "r3\n"); /* the wrong id: nothing happens */
    assert_int_equal(m.mode, MODE_CONFIRM);
    assert_int_equal(m.ncmds, 0);
    model_key(&m, TK_BACKSPACE);
    keys(&m, "2\n");
    assert_int_equal(m.mode, MODE_NORMAL);
    struct model_cmd c[4];
    assert_int_equal(model_take_cmds(&m, c, 4), 1);
    assert_int_equal(c[0].kind, CMD_DRAIN);
    assert_string_equal(c[0].target, "r2");
    assert_string_equal(c[0].body, "{\"timeout_s\":30}");
    model_cmd_done(&m, &c[0], true, "", NULL);
    assert_string_equal(m.status, "drain r2: done");
    model_release(&m);
}

static void test_filter_regex_and_invert_and_sort(void **state)
{
    (void)state;
    static struct model m;
    fill(&m, false);
    keys(&m, "/r[12]\n");
    static struct row rows[ROWS_MAX];
    const struct col *cols;
    int ncols;
    int n = screen_rows(&m, SCR_FLEET, &cols, &ncols, rows, ROWS_MAX);
    /* r1, r2 and the two service totals (never filtered) */
    assert_int_equal(n, 4);
    assert_string_equal(rows[0].key, "r1");
    assert_string_equal(rows[1].key, "r2");
    render(&m, 80, 24, "filter", false);
    keys(&m, "/"); /* the dialog starts with the current filter */
    assert_string_equal(m.dlg_input, "r[12]");
    model_key(&m, TK_ESC); /* cancels and clears the filter */
    assert_string_equal(m.list[SCR_FLEET].filter, "");
    keys(&m, "/!r[12]\n");
    n = screen_rows(&m, SCR_FLEET, &cols, &ncols, rows, ROWS_MAX);
    assert_int_equal(n, 4); /* r3, gw and the totals */
    assert_string_equal(rows[0].key, "r3");
    keys(&m, "/");
    model_key(&m, TK_ESC);
    for (int i = 0; i < 3; i++)
        model_key(&m, '>'); /* from the natural order to REQ/S, the third column */
    model_key(&m, 'I');     /* descending */
    n = screen_rows(&m, SCR_FLEET, &cols, &ncols, rows, ROWS_MAX);
    assert_int_equal(n, 4); /* totals leave a sorted list */
    assert_string_equal(rows[0].key, "gw");
    assert_string_equal(rows[3].key, "r3"); /* unknown rates sort last */
    render(&m, 80, 24, "sorted", false);
    model_release(&m);
}

static void test_limit_form_preview_and_server_errors(void **state)
{
    (void)state;
    static struct model m;
    fill(&m, false);
    model_key(&m, '2');
    model_key(&m, 'e');
    assert_int_equal(m.mode, MODE_FORM);
    assert_string_equal(m.form[0].value, "100");
    model_key(&m, TK_BACKSPACE);
    model_key(&m, TK_BACKSPACE);
    keys(&m, "50");
    assert_string_equal(m.form_preview, "limit 100 → 150");
    render(&m, 80, 24, "limit-form", false);
    model_key(&m, '\n');
    struct model_cmd c[2];
    assert_int_equal(model_take_cmds(&m, c, 2), 1);
    assert_int_equal(c[0].kind, CMD_LIMIT_PUT);
    assert_int_equal(c[0].if_match, 3);
    json_t *body = load(c[0].body);
    assert_int_equal(json_integer_value(json_object_get(body, "limit")), 150);
    assert_string_equal(json_string_value(json_object_get(body, "algorithm")), "token_bucket");
    json_decref(body);
    json_t *problem = load("{\"errors\":[{\"field\":\"limit\",\"message\":\"must be at most 1000000\"}]}");
    model_cmd_done(&m, &c[0], false, "Validation failed", problem);
    json_decref(problem);
    assert_int_equal(m.mode, MODE_FORM);
    assert_string_equal(m.form[0].error, "must be at most 1000000");
    model_key(&m, TK_ESC);
    assert_int_equal(m.mode, MODE_NORMAL);
    model_release(&m);
}

static void test_readonly_offers_no_actions_and_mono_keeps_text(void **state)
{
    (void)state;
    static struct model m;
    fill(&m, true);
    model_key(&m, 'd');
    assert_int_equal(m.mode, MODE_NORMAL);
    assert_string_equal(m.status, "read-only: this session cannot change the fleet");
    render(&m, 80, 24, "readonly", false);
    model_release(&m);
    fill(&m, false);
    m.mono = true; /* the canvas is the same; the terminal drops the colours */
    render(&m, 80, 24, "fleet", false);
    model_release(&m);
}

static void test_drill_steps_mark_the_sweep(void **state)
{
    (void)state;
    static struct model m;
    fill(&m, false);
    json_t *ev = load("{\"kind\":\"step\",\"run\":\"replica-latency-1\",\"replicas\":"
                      "[{\"replica\":\"r2\",\"status\":200}]}");
    model_drill_event(&m, ev);
    json_decref(ev);
    render(&m, 200, 60, "drill-marker", true);
    ev = load("{\"kind\":\"end\",\"run\":\"replica-latency-1\",\"verdict\":\"passed\"}");
    model_drill_event(&m, ev);
    json_decref(ev);
    assert_string_equal(m.status, "drill replica-latency-1: passed");
    model_release(&m);
}

static void test_numbers_move_every_refresh_but_states_at_once(void **state)
{
    (void)state;
    static struct model m;
    static struct row rows[ROWS_MAX];
    const struct col *cols;
    int ncols;
    char doc[8192];
    model_init(&m, false, false);
    snprintf(doc, sizeof(doc), FLEET_DOC, 10);
    model_set_doc(&m, DOC_FLEET, load(doc), 1000);
    snprintf(doc, sizeof(doc), FLEET_DOC, 20);
    model_set_doc(&m, DOC_FLEET, load(doc), 2000); /* 1 s later: the numbers hold */
    screen_rows(&m, SCR_FLEET, &cols, &ncols, rows, ROWS_MAX);
    assert_string_equal(rows[0].cell[2], "10");
    model_set_doc(&m, DOC_FLEET, load(doc), 3000); /* refresh_ms (2 s) after: they move */
    screen_rows(&m, SCR_FLEET, &cols, &ncols, rows, ROWS_MAX);
    assert_string_equal(rows[0].cell[2], "20");
    /* r1 goes down 0.5 s later: shown at once, whatever the rhythm */
    char *down = strdup(doc);
    char *p = strstr(down, "\"state\":\"serving\",\"up\":true");
    assert_non_null(p);
    memcpy(p, "\"state\":\"drained\",\"up\":true", strlen("\"state\":\"drained\",\"up\":true"));
    model_set_doc(&m, DOC_FLEET, load(down), 3500);
    free(down);
    screen_rows(&m, SCR_FLEET, &cols, &ncols, rows, ROWS_MAX);
    assert_string_equal(rows[0].cell[1], "drained");
    model_release(&m);
}

static void test_waterfall_help_palette_and_disconnected(void **state)
{
    (void)state;
    static struct model m;
    fill(&m, false);
    model_key(&m, '5');
    model_key(&m, '\n');
    struct model_cmd c[2];
    assert_int_equal(model_take_cmds(&m, c, 2), 1);
    assert_int_equal(c[0].kind, CMD_TRACE_GET);
    assert_string_equal(c[0].target, "4bf92f3577b34da6a3ce929d0e0e4736");
    model_set_doc(&m, DOC_TRACE, load(trace_doc), 1700000021000ULL);
    render(&m, 100, 24, "waterfall", true);
    model_key(&m, TK_ESC);
    model_key(&m, '?');
    render(&m, 80, 24, "help", false);
    model_key(&m, TK_ESC);
    keys(&m, ":weight r1 50\n");
    assert_int_equal(model_take_cmds(&m, c, 2), 1);
    assert_int_equal(c[0].kind, CMD_WEIGHT);
    assert_string_equal(c[0].body, "{\"weight\":50}");
    model_set_connected(&m, false, "disconnected (Couldn't connect to server), retrying in 2 s");
    model_key(&m, '1');
    render(&m, 80, 24, "disconnected", false);
    model_key(&m, 'q');
    assert_true(m.quit);
    model_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_screen_at_80x24_and_200x60),
        cmocka_unit_test(test_drain_confirm_dialog_needs_the_replica_id),
        cmocka_unit_test(test_filter_regex_and_invert_and_sort),
        cmocka_unit_test(test_limit_form_preview_and_server_errors),
        cmocka_unit_test(test_readonly_offers_no_actions_and_mono_keeps_text),
        cmocka_unit_test(test_waterfall_help_palette_and_disconnected),
        cmocka_unit_test(test_drill_steps_mark_the_sweep),
        cmocka_unit_test(test_numbers_move_every_refresh_but_states_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
