/* Fuzz target: redis_url_parse on arbitrary text, then format and re-parse the result,
 * which must give the same fields (the formatter never prints the password, so that
 * field is compared only for emptiness of user-less URLs). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "redis_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[2048];
    if (size >= sizeof(text))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct redis_url u, again;
    char err[128];
    if (redis_url_parse(text, &u, err) != 0)
        return 0;
    char formatted[1400];
    redis_url_format(&u, formatted, sizeof(formatted));
    if (redis_url_parse(formatted, &again, err) != 0)
        abort();
    if (strcmp(u.host, again.host) || u.port != again.port || u.db != again.db ||
        strcmp(u.unix_path, again.unix_path))
        abort();
    return 0;
}
