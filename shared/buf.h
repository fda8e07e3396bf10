/*
 * buf — a growable byte buffer with a hard upper bound (curl's dynbuf).
 *
 * Every buffer in sluice has a named maximum: an append that would pass it fails with
 * SL_ETOOBIG and leaves the buffer as it was. The data is always NUL-terminated (the NUL
 * is not counted in len and not in max), so text can be used as a C string.
 * The caller owns the struct; buf_release frees the storage.
 */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;     /* NULL until the first append */
    size_t len;     /* bytes in use */
    size_t cap;     /* bytes allocated (excluding the NUL) */
    size_t max;     /* hard bound on len */
};

void buf_init(struct buf *b, size_t max_bytes);
void buf_release(struct buf *b);
/* Forget the contents, keep the storage. */
void buf_reset(struct buf *b);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vappendf(struct buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Hand the storage to the caller (must free()); the buffer is left empty. Never NULL
 * unless out of memory: an empty buffer yields "". */
char *buf_detach(struct buf *b);
/* The contents as a C string ("" when empty). */
const char *buf_str(const struct buf *b);

#endif
