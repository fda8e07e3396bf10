/*
 * fuzz — the libFuzzer entry point every tests/fuzz/fuzz_*.c defines.
 *
 * The same file builds two ways: with clang -fsanitize=fuzzer (make fuzz) for fuzzing,
 * and with replay.c (make test) to replay the checked-in corpus under tests/fuzz/corpus/.
 */
#ifndef SLUICE_FUZZ_H
#define SLUICE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
