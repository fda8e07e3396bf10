/*
 * cli — `sluice SUB-COMMAND ...`: the scriptable face of the control plane (docs/server.md).
 *
 * tui/main.c hands argv over when argv[1] is a sub-command; everything else is the TUI.
 * Each sub-command is one request (drain --wait polls) through tui/client.h and prints the
 * answer: a table for people (default, no colours), or with `-o json` the server's JSON
 * document, compact, on one line of stdout (also for an error, when the server sent one).
 * Errors go to stderr as one or two lines that say what to do next.
 *
 * Exit codes, which scripts can trust:
 *   0  success
 *   1  the server refused or failed (4xx/5xx other than 401/403: not found, 412 conflict,
 *      422 invalid, 502/503), answered something that is not its JSON, or a drain --wait
 *      did not end in time
 *   2  usage: unknown sub-command or option, wrong arguments, unreadable or invalid JSON input
 *   3  sluice-server could not be reached (refused, timed out, bad --server URL)
 *   4  authentication or authorization: 401 (no or bad --token) or 403 (role too low)
 */
#ifndef TUI_CLI_H
#define TUI_CLI_H

#include <stdbool.h>
#include <stdio.h>

enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1,
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_UNREACHABLE = 3,
    CLI_EXIT_AUTH = 4,
};

/* true when word is a CLI sub-command (status, limits, drain, undrain, weight, faults, slos,
 * traces, queues, drills, help) */
bool cli_is_command(const char *word);
/* argv[0] is the program, argv[1] the sub-command. Returns the exit code. */
int cli_main(int argc, char **argv);
/* The sub-commands, global options and exit codes, for `sluice --help` and `sluice help`. */
void cli_usage(FILE *out);

#endif
