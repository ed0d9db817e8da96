/*
 * Compiled inner loops of our Krylov methods (solvers/gcrodr.py, solvers/rcg.py).
 *
 * Why: at 10^4 unknowns one iteration is ~0.1 ms of arithmetic, and driving it from Python
 * (a dozen petsc4py/numpy calls per step) costs as much again. Only the per-iteration loops
 * live here; everything done once per cycle or per solve (harmonic Ritz problems, recycle
 * updates, refreshes) stays in Python, where it is one BLAS/LAPACK call per block.
 *
 * Arguments come in one struct per kernel, declared in krylov.h (the single description of
 * this boundary, which solvers/native.py reads and checks against pdegen_layout below).
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
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "krylov.h"
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
 * arrays are described in krylov.h; cs, sn hold the rotations (steps entries each).
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
 * arrays are described in krylov.h. It allocates nothing, so a failure only has to give the
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

/*
 * The diffusion stencil's values (krylov.h). Why compiled: numpy needs a harmonic mean per
 * face, sums per axis and a scatter of every value through an index array into the CSR
 * order, 4.3 ms for a 421 x 421 Darcy sample and 10 ms at 64^3, most of it the scatter;
 * one pass that writes each row's values in order takes a fraction of that. Axes are
 * padded to three: a 2D grid is a 1 x n x n one whose first axis has no neighbours.
 *
 * Into a Mat (A given): the values are written where PETSc keeps them, instead of into an
 * array that pdegen_set_aij_values then copies there: 7 MB written and 7 MB read less per
 * 421 x 421 sample, 14 and 14 at 64^3 (pdegen/operators.py, DiffusionMatrix).
 */
static PetscErrorCode DiffusionStencil(const pdegen_diffusion_stencil_args *args, double *data);

/*
 * The value array of a sequential AIJ matrix of nnz entries, for writing every value
 * (MatSeqAIJGetArrayWrite: restoring it raises the Mat's state). Refuses another type or
 * count, so a caller's wrong pattern is an error, not an overrun.
 */
static PetscErrorCode AIJValuesForWrite(Mat A, int64_t nnz, PetscScalar **v)
{
  PetscBool seqaij;
  MatInfo   info;

  PetscFunctionBegin;
  PetscCall(PetscObjectTypeCompare((PetscObject)A, MATSEQAIJ, &seqaij));
  PetscCheck(seqaij, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONG, "not a MATSEQAIJ matrix");
  PetscCall(MatGetInfo(A, MAT_LOCAL, &info));
  PetscCheck((int64_t)info.nz_used == nnz, PETSC_COMM_SELF, PETSC_ERR_ARG_SIZ, "%" PRId64 " values for a matrix of %" PRId64 " entries", nnz, (int64_t)info.nz_used);
  PetscCall(MatSeqAIJGetArrayWrite(A, v));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode pdegen_diffusion_stencil(pdegen_diffusion_stencil_args *args)
{
  PetscScalar *v;

  PetscFunctionBegin;
  if (!args->A) {
    PetscCheck(args->data, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "neither data nor A given");
    PetscCall(DiffusionStencil(args, args->data));
    PetscFunctionReturn(PETSC_SUCCESS);
  }
  PetscCheck(!args->data, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONG, "both data and A given");
  PetscCall(AIJValuesForWrite(args->A, args->nnz, &v));
  {
    const PetscErrorCode ierr = DiffusionStencil(args, v);

    PetscCall(MatSeqAIJRestoreArrayWrite(args->A, &v)); /* restored on failure too */
    PetscCall(ierr);
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode DiffusionStencil(const pdegen_diffusion_stencil_args *args, double *data)
{
  const int64_t n = args->n, dim = args->dim, lead = 3 - dim;
  double       *faces[3] = {args->faces0, args->faces1, args->faces2};
  double       *fx[3]    = {NULL, NULL, NULL}; /* faces per padded axis, NULL if virtual */
  int64_t       m[3], full[3], fstride[3][3], astride[3], rows = 1, expected;
  const double *a = args->a;

  PetscFunctionBegin;
  PetscCheck(dim >= 1 && dim <= 3, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "dim %" PRId64 " is not 1, 2 or 3", dim);
  PetscCheck(n >= 1, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "n %" PRId64 " < 1", n);
  for (int ax = 0; ax < 3; ax++) {
    const int real = ax >= lead;
    m[ax]    = real ? n : 1;
    full[ax] = real ? n + 2 : 1;
    rows *= m[ax];
    if (real) {
      fx[ax] = faces[ax - lead];
      PetscCheck(fx[ax], PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "faces%d is NULL", (int)(ax - lead));
    }
  }
  expected = (2 * dim + 1) * rows - 2 * dim * (rows / n);
  PetscCheck(args->nnz == expected, PETSC_COMM_SELF, PETSC_ERR_ARG_SIZ, "nnz %" PRId64 " != %" PRId64, args->nnz, expected);
  astride[2] = 1;
  astride[1] = full[2];
  astride[0] = full[1] * full[2];
  for (int ax = 0; ax < 3; ax++) { /* strides of axis ax's face array (n + 1 along ax) */
    int64_t e[3] = {m[0], m[1], m[2]};
    if (ax >= lead) e[ax] = n + 1;
    fstride[ax][2] = 1;
    fstride[ax][1] = e[2];
    fstride[ax][0] = e[1] * e[2];
  }
  /* faces: between full-grid nodes j and j + 1 along ax, interior along the others */
  for (int ax = lead; ax < 3; ax++) {
    const int64_t o[3] = {lead <= 0 ? 1 : 0, lead <= 1 ? 1 : 0, 1}; /* interior offset */
    int64_t       e[3] = {m[0], m[1], m[2]};
    e[ax] = n + 1;
    for (int64_t j0 = 0; j0 < e[0]; j0++)
      for (int64_t j1 = 0; j1 < e[1]; j1++)
        for (int64_t j2 = 0; j2 < e[2]; j2++) {
          int64_t j[3] = {j0, j1, j2}, lo;
          for (int b = 0; b < 3; b++) if (b != ax) j[b] += o[b];
          lo = j[0] * astride[0] + j[1] * astride[1] + j[2] * astride[2];
          {
            const double x = a[lo], y = a[lo + astride[ax]];
            fx[ax][j0 * fstride[ax][0] + j1 * fstride[ax][1] + j2] = 2.0 * x * y / (x + y);
          }
        }
  }
  /* rows in C order: lower neighbours (slowest axis first), diagonal, upper (fastest first) */
  for (int64_t i0 = 0; i0 < m[0]; i0++)
    for (int64_t i1 = 0; i1 < m[1]; i1++)
      for (int64_t i2 = 0; i2 < m[2]; i2++) {
        const int64_t i[3] = {i0, i1, i2};
        double        lower[3], upper[3], diagonal = 0.0;
        for (int ax = lead; ax < 3; ax++) {
          const int64_t at = i0 * fstride[ax][0] + i1 * fstride[ax][1] + i2 * fstride[ax][2];
          lower[ax] = fx[ax][at];
          upper[ax] = fx[ax][at + fstride[ax][ax]];
        }
        for (int ax = lead; ax < 3; ax++)
          if (i[ax] > 0) *data++ = (-lower[ax]) * args->scale;
        for (int ax = lead; ax < 3; ax++) diagonal = diagonal + (upper[ax] + lower[ax]);
        *data++ = diagonal * args->scale;
        for (int ax = 2; ax >= lead; ax--)
          if (i[ax] < n - 1) *data++ = (-upper[ax]) * args->scale;
      }
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
 * New values for a matrix whose pattern is unchanged (krylov.h). Why not MatSetValuesCSR:
 * it searches every row for every entry, 4.4 ms for a 421 x 421 Darcy matrix; this is one
 * memcpy. Why not MatSetValuesCOO: its map from entries to PETSc's costs 16 bytes per entry
 * more than the matrix itself (12), and its indirect pass is slower than a copy.
 */
PetscErrorCode pdegen_set_aij_values(pdegen_set_aij_values_args *args)
{
  PetscScalar *v;

  PetscFunctionBegin;
  PetscCall(AIJValuesForWrite(args->A, args->nnz, &v));
  PetscCall(PetscArraycpy(v, args->values, args->nnz));
  PetscCall(MatSeqAIJRestoreArrayWrite(args->A, &v));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
 * One term of a pairwise sum: the value itself, or its squared deviation from mean. The
 * deviation is squared as numpy squares it, d * d with d rounded first; the library is built
 * with -ffp-contract=off (solvers/native.py), so no compiler fuses it into the sum.
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

/* snprintf at text + used, never past size; returns the length the text needs so far. */
static size_t Append(char *text, size_t size, size_t used, const char *format, ...)
{
  va_list ap;
  int     length;

  va_start(ap, format);
  length = vsnprintf(used < size ? text + used : NULL, used < size ? size - used : 0, format, ap);
  va_end(ap);
  return used + (length > 0 ? (size_t)length : 0);
}

#define PDEGEN_STRING_(x) #x
#define PDEGEN_STRING(x)  PDEGEN_STRING_(x)
/* One line per field of the struct named by RECORD, from the same list that declared it. */
#define PDEGEN_LAYOUT_FIELD(type, name) \
  used = Append(text, size, used, "field %s %zu %zu %s\n", #name, offsetof(RECORD, name), sizeof(((RECORD *)0)->name), #type);
#define PDEGEN_LAYOUT_STRUCT() used = Append(text, size, used, "struct %s %zu\n", PDEGEN_STRING(RECORD), sizeof(RECORD))

size_t pdegen_layout(char *text, size_t size)
{
  size_t used = 0;

  used = Append(text, size, used, "abi %d\n", PDEGEN_ABI_VERSION);
#define RECORD pdegen_gcrodr_cycle_args
  PDEGEN_LAYOUT_STRUCT();
  PDEGEN_GCRODR_CYCLE_FIELDS(PDEGEN_LAYOUT_FIELD, PDEGEN_LAYOUT_FIELD)
#undef RECORD
#define RECORD pdegen_deflated_cg_args
  PDEGEN_LAYOUT_STRUCT();
  PDEGEN_DEFLATED_CG_FIELDS(PDEGEN_LAYOUT_FIELD, PDEGEN_LAYOUT_FIELD)
#undef RECORD
#define RECORD pdegen_diffusion_stencil_args
  PDEGEN_LAYOUT_STRUCT();
  PDEGEN_DIFFUSION_STENCIL_FIELDS(PDEGEN_LAYOUT_FIELD, PDEGEN_LAYOUT_FIELD)
#undef RECORD
#define RECORD pdegen_set_aij_values_args
  PDEGEN_LAYOUT_STRUCT();
  PDEGEN_SET_AIJ_VALUES_FIELDS(PDEGEN_LAYOUT_FIELD, PDEGEN_LAYOUT_FIELD)
#undef RECORD
#define RECORD pdegen_sum_and_m2_args
  PDEGEN_LAYOUT_STRUCT();
  PDEGEN_SUM_AND_M2_FIELDS(PDEGEN_LAYOUT_FIELD, PDEGEN_LAYOUT_FIELD)
#undef RECORD
  return used;
}
