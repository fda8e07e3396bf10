/*
 * fuzz_jwt — jwt_verify_hs256 on arbitrary bytes. The bytes become a NUL-terminated
 * string (an embedded NUL just ends the token early, as it would for a C caller). The
 * key is fixed, so inputs that carry a valid MAC for it (the corpus has some) reach the
 * payload parser and the claim checks; everything else exercises splitting, base64url and
 * the header. Claims returned on success are released, so leaks show up under ASan.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "jwt.h"

static const uint8_t fuzz_key[] = "0123456789abcdef0123456789abcdef";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *token = malloc(size + 1);
    if (!token)
        return 0;
    memcpy(token, data, size);
    token[size] = '\0';

    json_t *claims = NULL;
    int rc = jwt_verify_hs256(token, fuzz_key, sizeof(fuzz_key) - 1, 1700000000, 60, &claims);
    /* The contract: claims exactly when the verdict is SL_OK. */
    if ((rc == SL_OK) != (claims != NULL))
        abort();
    json_decref(claims);
    free(token);
    return 0;
}
