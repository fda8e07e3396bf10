/*
 * keys — `sluice-shortener keys create|revoke`: minting and revoking API keys.
 *
 * A minted key is printed once, alone on the first line of standard output (DESIGN
 * §4.0), then "id:" and "scopes:" lines; only its SHA-256 is stored (app:key:{HASH},
 * app:keyid:{ID}).
 */
#ifndef SHORTENER_KEYS_H
#define SHORTENER_KEYS_H

/* argv[0] is "keys". Returns the process exit status (0, 1 failure, 2 usage). */
int keys_main(int argc, char **argv);

#endif
