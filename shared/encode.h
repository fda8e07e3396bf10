/*
 * encode — hex (base16) and base64 text encodings (RFC 4648), pure and allocation-free.
 *
 * Used for key hashes (hex), webhook signatures (standard base64, RFC 4648 §4) and JWT
 * segments (base64url without padding, RFC 4648 §5 and RFC 7515 §2).
 *
 * Contract:
 *  - Encoders write into caller-provided buffers sized by the caller from the *_len
 *    helpers and always NUL-terminate.
 *  - Decoders are strict, because they read attacker-controlled input where two spellings
 *    of one value would let a signed token or key be re-encoded without detection
 *    (RFC 4648 §3.5, §12): no whitespace, no characters from the other alphabet, padding
 *    exactly as required (standard) or absent (url), and unused trailing bits zero.
 *    Malformed input is SL_EPARSE; a destination smaller than the decoded length is
 *    SL_ETOOBIG. Length-shape errors are detected before the capacity check, character
 *    errors after it. On error *out_len is untouched and out may hold partial output.
 *  - Inputs are (pointer, length) pairs and need not be NUL-terminated.
 */
#ifndef SLUICE_ENCODE_H
#define SLUICE_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Lowercase hex of n bytes; out must hold 2n+1 chars (NUL-terminated). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Accepts upper- and lowercase digits; len must be even. */
int hex_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* Length of the encoding of n bytes, excluding the NUL: with padding when !url,
 * without when url. n must be below SIZE_MAX / 4 * 3. */
size_t base64_encoded_len(size_t n, bool url);
/* Encode n bytes; out must hold base64_encoded_len(n, url) + 1. Returns the length. */
size_t base64_encode(const uint8_t *in, size_t n, char *out, bool url);
/* Upper bound of the decoded length of len characters, for sizing buffers. */
size_t base64_decoded_max(size_t len);
int base64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len, bool url);

#endif
