/* sluice — the dashboard, or with a sub-command the scriptable CLI (docs/tui.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "app.h"
#include "cli.h"
#include "flags.h"
#include "version.h"

#define TUI_USAGE                                                                          \
    "usage: sluice [--server URL] [--token TOKEN] [--readonly] [--mono] [--mouse] [-d MS]\n" \
    "       sluice COMMAND ...   (status, limits, drain, undrain, weight, faults, slos,\n"     \
    "                             traces, queues, drills; sluice help)\n"                     \
    "\nThe sluice dashboard: the fleet live, and the console to change it (docs/tui.md).\n"  \
    "SLUICE_SERVER and SLUICE_TOKEN stand in for --server and --token; NO_COLOR for --mono."

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc > 1 && cli_is_command(argv[1])) {
        int rc = cli_main(argc, argv);
        curl_global_cleanup();
        return rc;
    }
    struct app_opts o = {0};
    unsigned long poll_ms = 0, refresh_ms = 2000;
    bool readonly = false, mono = false, mouse = false;
    const struct flag table[] = {
        {"server", FLAG_STRING, &o.server, "URL", "the control plane (http://127.0.0.1:7700)", 0, 0,
         NULL},
        {"token", FLAG_STRING, &o.token, "TOKEN", "an API key or JWT of sluice-server", 0, 0, NULL},
        {"readonly", FLAG_BOOL, &readonly, NULL, "watch only: no actions", 0, 0, NULL},
        {"mono", FLAG_BOOL, &mono, NULL, "no colours (also NO_COLOR)", 0, 0, NULL},
        {"mouse", FLAG_BOOL, &mouse, NULL, "mouse clicks and wheel", 0, 0, NULL},
        {"d", FLAG_UINT, &poll_ms, "MS", "poll every MS instead of following the event stream", 100,
         60000, NULL},
        {"refresh-ms", FLAG_UINT, &refresh_ms, "MS",
         "how often the numbers move (2000); state changes show at once", 250, 60000, NULL},
        {0},
    };
    if (flags_wants(argc, argv, "--help") || flags_wants(argc, argv, "-h")) {
        flags_usage(stdout, TUI_USAGE, table);
        printf("\n");
        cli_usage(stdout); /* the commands and the exit codes scripts rely on */
        return 0;
    }
    if (flags_wants(argc, argv, "--version")) {
        printf("sluice %s\n", SLUICE_VERSION);
        return 0;
    }
    char err[FLAGS_ERR_MAX];
    int pos;
    for (int i = 1; i < argc; i++) /* htop's "-d MS" */
        if (!strcmp(argv[i], "-d"))
            argv[i] = "--d";
    if (flags_parse(table, argc, argv, &pos, err)) {
        fprintf(stderr, "sluice: %s\n", err);
        return 2;
    }
    if (pos != argc) {
        fprintf(stderr, "sluice: unknown command '%s' (sluice help lists them)\n", argv[pos]);
        return 2;
    }
    o.readonly = readonly;
    o.mono = mono || (getenv("NO_COLOR") && *getenv("NO_COLOR"));
    o.mouse = mouse;
    o.poll_ms = (unsigned)poll_ms;
    o.refresh_ms = (unsigned)refresh_ms;
    int rc = app_run(&o);
    curl_global_cleanup();
    return rc;
}
