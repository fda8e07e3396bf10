#include "zipf.h"

#include <math.h>
#include <stdlib.h>

#include "err.h"
#include "prng.h"

/* Cumulative sums of w, normalised; the last entry is set to exactly 1.0 so that every
 * u < 1 finds a rank even after rounding. */
static int build(struct zipf *z, size_t n, double s, const double *w)
{
    z->n = 0;
    z->cdf = NULL;
    if (n == 0)
        return SL_EINVAL;
    if (n > ZIPF_N_MAX)
        return SL_ERANGE;
    double *cdf = malloc(n * sizeof(*cdf));
    if (!cdf)
        return SL_ENOMEM;
    double sum = 0;
    for (size_t k = 0; k < n; k++) {
        double wk = w ? w[k] : pow((double)(k + 1), -s);
        if (!isfinite(wk) || wk < 0) {
            free(cdf);
            return SL_EINVAL;
        }
        sum += wk;
        cdf[k] = sum;
    }
    if (!(sum > 0) || !isfinite(sum)) {
        free(cdf);
        return SL_EINVAL;
    }
    for (size_t k = 0; k < n; k++)
        cdf[k] /= sum;
    double last = cdf[n - 1];
    for (size_t k = n; k-- > 0 && cdf[k] >= last;) /* and a tail of zero weights */
        cdf[k] = 1.0;
    z->n = n;
    z->cdf = cdf;
    return SL_OK;
}

int zipf_init(struct zipf *z, size_t n, double s)
{
    if (!(s >= 0 && s <= ZIPF_S_MAX)) { /* also NaN */
        z->n = 0;
        z->cdf = NULL;
        return SL_EINVAL;
    }
    return build(z, n, s, NULL);
}

int zipf_init_weights(struct zipf *z, const double *w, size_t n)
{
    return build(z, n, 0, w);
}

void zipf_release(struct zipf *z)
{
    free(z->cdf);
    z->cdf = NULL;
    z->n = 0;
}

size_t zipf_sample(const struct zipf *z, uint64_t r)
{
    double u = prng_unit(r);
    size_t lo = 0, hi = z->n - 1; /* cdf[hi] == 1.0 > u: the answer is in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (u < z->cdf[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

double zipf_prob(const struct zipf *z, size_t k)
{
    if (k >= z->n)
        return 0;
    return k == 0 ? z->cdf[0] : z->cdf[k] - z->cdf[k - 1];
}
