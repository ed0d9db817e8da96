/*
 * Field moments in numpy's summation order (pdegen/dataset/statistics.py): the sum and the
 * sum of squared deviations of a float64 array, bit for bit numpy's, in two passes and no
 * temporary. Plain C: no PETSc call. Arguments: kernels.h.
 */
#include "kernels.h"

/*
 * One term of a pairwise sum: the value itself, or its squared deviation from mean. The
 * deviation is squared as numpy squares it, d * d with d rounded first; the library is built
 * with -ffp-contract=off (solvers/native/library.py), so no compiler fuses it into the sum.
 */
static inline double Term(const double *a, int64_t i, double mean, int squared)
{
  double d;

  if (!squared) return a[i];
  d = a[i] - mean;
  return d * d;
}

/* numpy's pairwise_sum (numpy/_core/src/umath/loops_utils.h.src), term by term. */
static double PairwiseSum(const double *a, int64_t n, double mean, int squared)
{
  if (n < 8) {
    double res = -0.0;

    for (int64_t i = 0; i < n; i++) res += Term(a, i, mean, squared);
    return res;
  } else if (n <= 128) {
    double  r[8], res;
    int64_t i;

    for (int k = 0; k < 8; k++) r[k] = Term(a, k, mean, squared);
    for (i = 8; i < n - (n % 8); i += 8)
      for (int k = 0; k < 8; k++) r[k] += Term(a, i + k, mean, squared);
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += Term(a, i, mean, squared);
    return res;
  } else {
    int64_t half = n / 2;

    half -= half % 8;
    return PairwiseSum(a, half, mean, squared) + PairwiseSum(a + half, n - half, mean, squared);
  }
}

/* Plain C, no PETSc call: it also runs where PETSc was never initialised (pdegen check). */
PetscErrorCode pdegen_sum_and_m2(pdegen_sum_and_m2_args *args)
{
  double sum, mean;

  if (args->count < 1 || !args->values) return PETSC_ERR_ARG_OUTOFRANGE;
  sum        = 0.0 + PairwiseSum(args->values, args->count, 0.0, 0);
  mean       = sum / (double)args->count;
  args->sum  = sum;
  args->m2   = 0.0 + PairwiseSum(args->values, args->count, mean, 1);
  return PETSC_SUCCESS;
}
