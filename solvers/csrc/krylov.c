/*
 * Compiled inner loops of our Krylov methods (solvers/gcrodr.py, solvers/rcg.py).
 *
 * Why: at 10^4 unknowns one iteration is ~0.1 ms of arithmetic, and driving it from Python
 * (a dozen petsc4py/numpy calls per step) costs as much again. Only the per-iteration loops
 * live here; everything done once per cycle or per solve (harmonic Ritz problems, recycle
 * updates, refreshes) stays in Python, where it is one BLAS/LAPACK call per block.
 *
 * Layout: a basis is a C-contiguous numpy array with one vector per row, i.e. a column-major
 * n x c matrix with leading dimension n, so projections are one gemv each. The operator and
 * preconditioner act on two work Vecs (src, dst) that borrow rows through VecPlaceArray.
 * Inner products are summed over the matrix's communicator with one MPI_Allreduce each, so
 * the kernels run unchanged on distributed matrices.
 *
 * Every function returns a PetscErrorCode (0 on success), and the Python wrappers check it.
 */
#include <petscksp.h>
#include <petscblaslapack.h>

typedef struct {
  Mat         A;
  PC          pc; /* NULL: identity */
  Vec         src, dst;
  PetscBLASInt n;
  MPI_Comm    comm;
  PetscMPIInt size;
} Ops;

static PetscErrorCode OpsInit(Ops *ops, Mat A, PC pc, Vec src, Vec dst, long n)
{
  PetscFunctionBeginUser;
  ops->A   = A;
  ops->pc  = pc;
  ops->src = src;
  ops->dst = dst;
  PetscCall(PetscBLASIntCast((PetscInt)n, &ops->n));
  PetscCall(PetscObjectGetComm((PetscObject)A, &ops->comm));
  PetscCallMPI(MPI_Comm_size(ops->comm, &ops->size));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* out = M^{-1} in (precondition) or out = A in, on rows borrowed by the work Vecs */
static PetscErrorCode Apply(Ops *ops, PetscBool precondition, const double *in, double *out)
{
  PetscFunctionBeginUser;
  if (precondition && !ops->pc) {
    PetscCall(PetscArraycpy(out, in, ops->n));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(VecPlaceArray(ops->src, in));
  PetscCall(VecPlaceArray(ops->dst, out));
  if (precondition) PetscCall(PCApply(ops->pc, ops->src, ops->dst));
  else PetscCall(MatMult(ops->A, ops->src, ops->dst));
  PetscCall(VecResetArray(ops->src));
  PetscCall(VecResetArray(ops->dst));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode AllSum(Ops *ops, double *values, PetscMPIInt count)
{
  PetscFunctionBeginUser;
  if (ops->size > 1) PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, ops->comm));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static double LocalDot(Ops *ops, const double *a, const double *b)
{
  PetscBLASInt one = 1;
  return BLASdot_(&ops->n, a, &one, b, &one);
}

/* out[0:c] = rows^T w, and (when want_norm) out[c] = w.w: one reduction for both. */
static PetscErrorCode Project(Ops *ops, const double *rows, PetscBLASInt c, const double *w, double *out, PetscBool want_norm)
{
  const double one = 1.0, zero = 0.0;
  PetscBLASInt inc = 1;

  PetscFunctionBeginUser;
  if (c > 0) BLASgemv_("T", &ops->n, &c, &one, rows, &ops->n, w, &inc, &zero, out, &inc);
  if (want_norm) out[c] = LocalDot(ops, w, w);
  PetscCall(AllSum(ops, out, (PetscMPIInt)(c + (want_norm ? 1 : 0))));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* w -= rows h */
static void Subtract(Ops *ops, const double *rows, PetscBLASInt c, const double *h, double *w)
{
  const double minus = -1.0, one = 1.0;
  PetscBLASInt inc = 1;
  if (c > 0) BLASgemv_("N", &ops->n, &c, &minus, rows, &ops->n, h, &inc, &one, w, &inc);
}

/*
 * GCRO-DR's Arnoldi cycle on (I - C C^T) A M^{-1}, with Givens rotations on the Hessenberg
 * part; the same arithmetic as GCRODR._cycle_python (the reference implementation).
 *
 *   basis:  (kk + steps + 1) x n rows [C; V], C given, V[0] (row kk) = r / ||r|| given
 *   search: (kk + steps) x n rows [U; Z], Z[j] = M^{-1} V[j] written here
 *   G:      (kk + steps + 1) x gcols row-major, zero on entry except its identity block
 *   R:      (steps + 1) x steps row-major, zero on entry: the rotated Hessenberg matrix
 *   g:      steps + 1 entries, g[0] = ||r||: the rotated right-hand side
 *   work:   3 * (kk + steps + 2) doubles
 * Returns the steps done; the residual estimate is |g[done]|.
 */
PetscErrorCode pdegen_gcrodr_cycle(KSP ksp, Mat A, PC pc, Vec src, Vec dst, long n, double *basis, double *search, long kk, long steps, double *G, long gcols, double *R, double *g, double *work, double target, long its0, long *done_out)
{
  Ops          ops;
  PetscBLASInt inc = 1;
  double      *h, *h2, *hcol, *cs, *sn, estimate = PETSC_MAX_REAL;
  long         done = 0;

  PetscFunctionBeginUser;
  PetscCall(OpsInit(&ops, A, pc, src, dst, n));
  PetscCall(PetscMalloc2(steps, &cs, steps, &sn));
  h    = work;
  h2   = work + (kk + steps + 2);
  hcol = work + 2 * (kk + steps + 2);
  for (long j = 0; j < steps; j++) {
    long          col = kk + j;
    double       *w   = basis + (col + 1) * n;
    PetscBLASInt  c   = (PetscBLASInt)(col + 1);
    double        before, after, d, cj, sj;
    PetscBool     breakdown;

    PetscCall(Apply(&ops, PETSC_TRUE, basis + col * n, search + col * n));
    PetscCall(Apply(&ops, PETSC_FALSE, search + col * n, w));
    PetscCall(Project(&ops, basis, c, w, h, PETSC_TRUE));
    before = PetscSqrtReal(h[c]);
    Subtract(&ops, basis, c, h, w);
    after = LocalDot(&ops, w, w);
    PetscCall(AllSum(&ops, &after, 1));
    after = PetscSqrtReal(after);
    if (after < 0.1 * before) { /* DGKS: reorthogonalise when cancellation is severe */
      PetscCall(Project(&ops, basis, c, w, h2, PETSC_FALSE));
      Subtract(&ops, basis, c, h2, w);
      for (long i = 0; i < c; i++) h[i] += h2[i];
      after = LocalDot(&ops, w, w);
      PetscCall(AllSum(&ops, &after, 1));
      after = PetscSqrtReal(after);
    }
    for (long i = 0; i <= col; i++) G[i * gcols + col] = h[i];
    G[(col + 1) * gcols + col] = after;
    /* Givens rotations on the new Hessenberg column (rows kk.. of G) */
    for (long i = 0; i <= j; i++) hcol[i] = h[kk + i];
    hcol[j + 1] = after;
    for (long i = 0; i < j; i++) {
      double a = hcol[i], b = hcol[i + 1];
      hcol[i]     = cs[i] * a + sn[i] * b;
      hcol[i + 1] = cs[i] * b - sn[i] * a;
    }
    d = hypot(hcol[j], hcol[j + 1]);
    if (d > 0) {
      cj = hcol[j] / d;
      sj = hcol[j + 1] / d;
    } else {
      cj = 1.0;
      sj = 0.0;
    }
    cs[j]       = cj;
    sn[j]       = sj;
    hcol[j]     = d;
    hcol[j + 1] = 0.0;
    for (long i = 0; i <= j + 1; i++) R[i * steps + j] = hcol[i];
    g[j + 1] = -sj * g[j];
    g[j] *= cj;
    done     = j + 1;
    estimate = PetscAbsReal(g[j + 1]);
    PetscCall(KSPMonitor(ksp, (PetscInt)(its0 + done), estimate));
    breakdown = (PetscBool)(after <= 1e-14 * before);
    if (!breakdown) {
      double scale = 1.0 / after;
      BLASscal_(&ops.n, &scale, w, &inc);
    }
    if (estimate <= target || breakdown) break;
  }
  PetscCall(PetscFree2(cs, sn));
  *done_out = done;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
 * Deflated preconditioned CG iterations (the loop of RecycledCG._iterate_python): x, r are
 * updated in place from the deflated start; p, z, Ap are work rows. With k > 0 every search
 * direction is made A-orthogonal to W through Einv = (W^T A W)^{-1} (k x k, row-major).
 * The first `window` A-normalised directions and their products go to keep_p, keep_ap.
 * rnorm is ||r|| on entry; counts (out): its, kept, reason (a KSPConvergedReason).
 */
PetscErrorCode pdegen_deflated_cg(KSP ksp, Mat A, PC pc, Vec src, Vec dst, long n, double *x, double *r, double *z, double *p, double *ap, long k, const double *W, const double *AW, const double *Einv, double *work, double *keep_p, double *keep_ap, long window, double rnorm, double target, double divtol, long max_it, long *counts)
{
  Ops                ops;
  PetscBLASInt       kb, inc = 1;
  double             rz = 0.0, *t = work, *mu = work + k;
  long               its = 0, kept = 0;
  PetscBool          first = PETSC_TRUE;
  KSPConvergedReason reason;
  const double       one = 1.0, zero = 0.0;

  PetscFunctionBeginUser;
  PetscCall(OpsInit(&ops, A, pc, src, dst, n));
  kb = (PetscBLASInt)k;
  PetscCall(KSPMonitor(ksp, 0, rnorm));
  while (PETSC_TRUE) {
    double rz_new, pap, alpha, beta;
    if (rnorm <= target) {
      reason = rnorm > 0 ? KSP_CONVERGED_RTOL : KSP_CONVERGED_ATOL;
      break;
    }
    if (PetscIsInfOrNanReal(rnorm)) {
      reason = KSP_DIVERGED_NANORINF;
      break;
    }
    if (rnorm > divtol) {
      reason = KSP_DIVERGED_DTOL;
      break;
    }
    if (its >= max_it) {
      reason = KSP_DIVERGED_ITS;
      break;
    }
    PetscCall(Apply(&ops, PETSC_TRUE, r, z));
    rz_new = LocalDot(&ops, r, z);
    PetscCall(AllSum(&ops, &rz_new, 1));
    if (first) PetscCall(PetscArrayzero(p, ops.n)); /* p is fresh memory: 0 * NaN is NaN */
    beta  = first ? 0.0 : rz_new / rz;
    first = PETSC_FALSE;
    rz    = rz_new;
    if (k > 0) { /* p = z + beta p - W Einv (AW^T z): one gemv (with beta) and one axpy */
      const double minus = -1.0;
      PetscCall(Project(&ops, AW, kb, z, t, PETSC_FALSE));
      BLASgemv_("T", &kb, &kb, &one, Einv, &kb, t, &inc, &zero, mu, &inc); /* row-major Einv */
      BLASgemv_("N", &ops.n, &kb, &minus, W, &ops.n, mu, &inc, &beta, p, &inc);
      BLASaxpy_(&ops.n, &one, z, &inc, p, &inc);
    } else { /* p = z + beta p in one pass, as PETSc's CG does (VecAYPX) */
      for (PetscBLASInt i = 0; i < ops.n; i++) p[i] = z[i] + beta * p[i];
    }
    PetscCall(Apply(&ops, PETSC_FALSE, p, ap));
    pap = LocalDot(&ops, p, ap);
    PetscCall(AllSum(&ops, &pap, 1));
    if (pap <= 0 || PetscIsInfOrNanReal(pap)) {
      reason = KSP_DIVERGED_INDEFINITE_MAT;
      break;
    }
    alpha = rz / pap;
    BLASaxpy_(&ops.n, &alpha, p, &inc, x, &inc);
    alpha = -alpha;
    BLASaxpy_(&ops.n, &alpha, ap, &inc, r, &inc);
    its++;
    if (kept < window) { /* store A-normalised directions */
      double scale = 1.0 / PetscSqrtReal(pap);
      for (PetscBLASInt i = 0; i < ops.n; i++) {
        keep_p[kept * n + i]  = scale * p[i];
        keep_ap[kept * n + i] = scale * ap[i];
      }
      kept++;
    }
    rnorm = LocalDot(&ops, r, r);
    PetscCall(AllSum(&ops, &rnorm, 1));
    rnorm = PetscSqrtReal(rnorm);
    PetscCall(KSPMonitor(ksp, (PetscInt)its, rnorm));
  }
  counts[0] = its;
  counts[1] = kept;
  counts[2] = (long)reason;
  PetscFunctionReturn(PETSC_SUCCESS);
}
