/* Fuzz target: traceparent_parse; whatever parses as version 00 must format back to the
 * same bytes (lowercase hex, fixed layout). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "traceparent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trace_ctx t;
    if (traceparent_parse((const char *)data, size, &t) != 0)
        return 0;
    char out[TRACEPARENT_LEN + 1];
    traceparent_format(&t, out);
    if (size == TRACEPARENT_LEN && data[0] == '0' && data[1] == '0' &&
        memcmp(out, data, TRACEPARENT_LEN) != 0)
        abort();
    return 0;
}
