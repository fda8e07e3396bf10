/*
 * base62 — the 0-9A-Za-z alphabet for identifiers that appear in URLs and keys: short
 * link codes (a counter as base62), and random tokens such as API keys.
 *
 * Contract:
 *  - The alphabet is "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
 *    (digit value = position), most significant digit first. It must never change: codes
 *    already handed out decode through it.
 *  - A uint64_t takes at most 11 digits, so base62_encode_u64 needs 12 bytes with the NUL.
 *  - Decoding accepts leading zeros ("007" is 7); the empty string and any character
 *    outside the alphabet are SL_EPARSE (checked first), a value above UINT64_MAX is
 *    SL_ERANGE.
 *  - base62_random is uniform over the alphabet: bytes at or above 248 (= 4 * 62) are
 *    discarded rather than reduced modulo 62, which would favour the first 8 characters.
 *    Each character carries log2(62) ~ 5.954 bits of entropy.
 */
#ifndef SLUICE_BASE62_H
#define SLUICE_BASE62_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BASE62_U64_MAX_CHARS 11

/* Writes the digits and a NUL ("0" for 0); returns the number of digits. */
size_t base62_encode_u64(uint64_t v, char out[12]);
int base62_decode_u64(const char *s, size_t len, uint64_t *out);
/* nchars random characters into out, then a NUL (out holds nchars + 1). 0 or
 * SL_ECRYPTO; on error out is an empty string. */
int base62_random(char *out, size_t nchars);
/* True when len > 0 and every one of the len characters is in the alphabet. */
bool base62_is_valid(const char *s, size_t len);

#endif
