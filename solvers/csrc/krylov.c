/*
 * Compiled inner loops of our Krylov methods (solvers/gcrodr.py, solvers/rcg.py).
 *
 * Why: at 10^4 unknowns one iteration is ~0.1 ms of arithmetic, and driving it from Python
 * (a dozen petsc4py/numpy calls per step) costs as much again. Only the per-iteration loops
 * live here; everything done once per cycle or per solve (harmonic Ritz problems, recycle
 * updates, refreshes) stays in Python, where it is one BLAS/LAPACK call per block.
 *
 * Arguments come in one struct per kernel, declared in kernels.h (the single description of
 * this boundary, which solvers/native/ reads and checks against pdegen_layout, layout.c).
 *
 * The operator and preconditioner act on two work Vecs (src, dst) that borrow rows through
 * VecPlaceArray. Inner products are summed over the matrix's communicator with one
 * MPI_Allreduce each, so the kernels run unchanged on distributed matrices.
 *
 * Errors: every function returns a PetscErrorCode (0 on success), and the Python wrappers
 * check it. A failure leaves the work Vecs as they were found (no rows still placed, no read
 * lock left behind) and frees what was allocated, so the caller can report it and solve
 * again with the same Vecs: each kernel allocates in an outer function, runs its loop in an
 * inner one, and frees before passing the inner function's error on.
 */
#include "kernels.h"
#include <petscblaslapack.h>

#if defined(PETSC_USE_COMPLEX) || !defined(PETSC_USE_REAL_DOUBLE)
  #error "the kernels need a real, double-precision PETSc (PetscScalar is numpy's float64)"
#endif

typedef struct {
  Mat          A;
  PC           pc; /* NULL: identity */
  Vec          src, dst;
  PetscInt     src_lock, dst_lock; /* the Vecs' read locks on entry */
  PetscBLASInt n;
  MPI_Comm     comm;
  PetscMPIInt  size;
} Ops;

static PetscErrorCode OpsInit(Ops *ops, Mat A, PC pc, Vec src, Vec dst, int64_t n)
{
  PetscFunctionBeginUser;
  ops->A   = A;
  ops->pc  = pc;
  ops->src = src;
  ops->dst = dst;
  PetscCall(PetscBLASIntCast((PetscInt)n, &ops->n));
  PetscCall(PetscObjectGetComm((PetscObject)A, &ops->comm));
  PetscCallMPI(MPI_Comm_size(ops->comm, &ops->size));
  PetscCall(VecLockGet(src, &ops->src_lock));
  PetscCall(VecLockGet(dst, &ops->dst_lock));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* PCApply and MatMult lock their input for reading and unlock it only when they succeed. */
static PetscErrorCode Unlock(Vec v, PetscInt entry)
{
  PetscInt lock;

  PetscFunctionBeginUser;
  PetscCall(VecLockGet(v, &lock));
  for (; lock > entry; lock--) PetscCall(VecLockReadPop(v));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
 * out = M^{-1} in (precondition) or out = A in, on rows borrowed by the work Vecs. The rows
 * are given back (VecResetArray) whether or not the operation succeeds: a Vec left holding a
 * row refuses every later VecPlaceArray, and the row may be freed memory by then.
 */
static PetscErrorCode Apply(Ops *ops, PetscBool precondition, const double *in, double *out)
{
  PetscErrorCode ierr;

  PetscFunctionBeginUser;
  if (precondition && !ops->pc) {
    PetscCall(PetscArraycpy(out, in, ops->n));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCall(VecPlaceArray(ops->src, in));
  ierr = VecPlaceArray(ops->dst, out);
  if (ierr == PETSC_SUCCESS) {
    ierr = precondition ? PCApply(ops->pc, ops->src, ops->dst) : MatMult(ops->A, ops->src, ops->dst);
    PetscCall(VecResetArray(ops->dst));
  }
  PetscCall(VecResetArray(ops->src));
  if (ierr != PETSC_SUCCESS) {
    PetscCall(Unlock(ops->src, ops->src_lock));
    PetscCall(Unlock(ops->dst, ops->dst_lock));
  }
  PetscCall(ierr);
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
 * part; the same arithmetic as GCRODR._arnoldi_python (the reference implementation). The
 * arrays are described in kernels.h; cs, sn hold the rotations (steps entries each).
 */
static PetscErrorCode ArnoldiCycle(Ops *ops, const pdegen_gcrodr_cycle_args *a, double *cs, double *sn, int64_t *done_out)
{
  const int64_t n = a->n, kk = a->kk, steps = a->steps, gcols = a->gcols;
  double *const basis = a->basis, *const search = a->search, *const G = a->G, *const R = a->R, *const g = a->g;
  double       *h, *h2, *hcol, estimate = PETSC_MAX_REAL;
  PetscBLASInt  inc = 1;

  PetscFunctionBeginUser;
  h    = a->work;
  h2   = a->work + (kk + steps + 2);
  hcol = a->work + 2 * (kk + steps + 2);
  for (int64_t j = 0; j < steps; j++) {
    int64_t      col = kk + j;
    double      *w   = basis + (col + 1) * n;
    PetscBLASInt c   = (PetscBLASInt)(col + 1);
    double       before, after, d, cj, sj;
    PetscBool    breakdown;

    PetscCall(Apply(ops, PETSC_TRUE, basis + col * n, search + col * n));
    PetscCall(Apply(ops, PETSC_FALSE, search + col * n, w));
    PetscCall(Project(ops, basis, c, w, h, PETSC_TRUE));
    before = PetscSqrtReal(h[c]);
    Subtract(ops, basis, c, h, w);
    after = LocalDot(ops, w, w);
    PetscCall(AllSum(ops, &after, 1));
    after = PetscSqrtReal(after);
    if (after < 0.1 * before) { /* DGKS: reorthogonalise when cancellation is severe */
      PetscCall(Project(ops, basis, c, w, h2, PETSC_FALSE));
      Subtract(ops, basis, c, h2, w);
      for (int64_t i = 0; i < c; i++) h[i] += h2[i];
      after = LocalDot(ops, w, w);
      PetscCall(AllSum(ops, &after, 1));
      after = PetscSqrtReal(after);
    }
    for (int64_t i = 0; i <= col; i++) G[i * gcols + col] = h[i];
    G[(col + 1) * gcols + col] = after;
    /* Givens rotations on the new Hessenberg column (rows kk.. of G) */
    for (int64_t i = 0; i <= j; i++) hcol[i] = h[kk + i];
    hcol[j + 1] = after;
    for (int64_t i = 0; i < j; i++) {
      double x = hcol[i], y = hcol[i + 1];
      hcol[i]     = cs[i] * x + sn[i] * y;
      hcol[i + 1] = cs[i] * y - sn[i] * x;
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
    for (int64_t i = 0; i <= j + 1; i++) R[i * steps + j] = hcol[i];
    g[j + 1] = -sj * g[j];
    g[j] *= cj;
    *done_out = j + 1;
    estimate  = PetscAbsReal(g[j + 1]);
    PetscCall(KSPMonitor(a->ksp, (PetscInt)(a->its0 + j + 1), estimate));
    breakdown = (PetscBool)(after <= 1e-14 * before);
    if (!breakdown) {
      double scale = 1.0 / after;
      BLASscal_(&ops->n, &scale, w, &inc);
    }
    if (estimate <= a->target || breakdown) break;
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode pdegen_gcrodr_cycle(pdegen_gcrodr_cycle_args *args)
{
  Ops            ops;
  double        *cs, *sn;
  int64_t        done = 0;
  PetscErrorCode ierr;

  PetscFunctionBeginUser;
  PetscCall(OpsInit(&ops, args->A, args->pc, args->src, args->dst, args->n));
  PetscCall(PetscMalloc2(args->steps, &cs, args->steps, &sn));
  ierr = ArnoldiCycle(&ops, args, cs, sn, &done);
  PetscCall(PetscFree2(cs, sn));
  PetscCall(ierr);
  args->done = done;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
 * Deflated preconditioned CG iterations (the loop of RecycledCG._iterate_python); the
 * arrays are described in kernels.h. It allocates nothing, so a failure only has to give the
 * borrowed rows back, which Apply does.
 */
PetscErrorCode pdegen_deflated_cg(pdegen_deflated_cg_args *args)
{
  const int64_t      n = args->n, k = args->k, window = args->window;
  double *const      x = args->x, *const r = args->r, *const z = args->z, *const p = args->p, *const ap = args->ap;
  Ops                ops;
  PetscBLASInt       kb, inc = 1;
  double             rnorm = args->rnorm, rz = 0.0, *t = args->work, *mu = args->work + k;
  int64_t            its = 0, kept = 0;
  PetscBool          first = PETSC_TRUE;
  KSPConvergedReason reason;
  const double       one = 1.0, zero = 0.0;

  PetscFunctionBeginUser;
  PetscCall(OpsInit(&ops, args->A, args->pc, args->src, args->dst, n));
  PetscCall(PetscBLASIntCast((PetscInt)k, &kb));
  PetscCall(KSPMonitor(args->ksp, 0, rnorm));
  while (PETSC_TRUE) {
    double rz_new, pap, alpha, beta;
    if (rnorm <= args->target) {
      reason = rnorm > 0 ? KSP_CONVERGED_RTOL : KSP_CONVERGED_ATOL;
      break;
    }
    if (PetscIsInfOrNanReal(rnorm)) {
      reason = KSP_DIVERGED_NANORINF;
      break;
    }
    if (rnorm > args->divtol) {
      reason = KSP_DIVERGED_DTOL;
      break;
    }
    if (its >= args->max_it) {
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
      PetscCall(Project(&ops, args->AW, kb, z, t, PETSC_FALSE));
      BLASgemv_("T", &kb, &kb, &one, args->Einv, &kb, t, &inc, &zero, mu, &inc); /* row-major Einv */
      BLASgemv_("N", &ops.n, &kb, &minus, args->W, &ops.n, mu, &inc, &beta, p, &inc);
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
        args->keep_p[kept * n + i]  = scale * p[i];
        args->keep_ap[kept * n + i] = scale * ap[i];
      }
      kept++;
    }
    rnorm = LocalDot(&ops, r, r);
    PetscCall(AllSum(&ops, &rnorm, 1));
    rnorm = PetscSqrtReal(rnorm);
    PetscCall(KSPMonitor(args->ksp, (PetscInt)its, rnorm));
  }
  args->its    = its;
  args->kept   = kept;
  args->reason = (int64_t)reason;
  PetscFunctionReturn(PETSC_SUCCESS);
}
