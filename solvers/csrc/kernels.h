/*
 * The C boundary of pdegen's compiled kernels: the one place where their arguments are
 * declared. One library is built from the files beside it, one job each: krylov.c (the inner
 * loops of GCRO-DR and recycling CG), assembly.c (matrix values), moments.c (field moments)
 * and layout.c (the layout report below). Each includes this header, and solvers/native/
 * parses the field lists below to build its ctypes structures, so the two sides cannot be
 * written out separately.
 *
 * Why a struct passed by pointer: the kernels take about twenty arguments each, and a
 * positional ctypes prototype copied by hand goes wrong silently (a swapped pair or an int
 * where C reads a long corrupts memory, it does not fail). One struct per kernel, described
 * by one field list, can be checked instead: the library reports the layout its compiler
 * gave the struct (pdegen_layout: every field's name, type, offset and size), and solvers/native/
 * refuses a library whose layout differs from the one it built from this header.
 *
 * Field lists: PDEGEN_<KERNEL>_FIELDS(IN, OUT) lists the fields of pdegen_<kernel>_args in
 * order, one IN(type, name) or OUT(type, name) each: IN fields are set by the caller (all of
 * them, solvers/native/ checks that), OUT fields are written by the kernel. Types are limited to
 * what solvers/native/ maps to ctypes: the PETSc handles KSP, Mat, PC, Vec; double; int64_t; and
 * pointers to double or int64_t (numpy float64/int64 arrays, C-contiguous).
 *
 * Arrays: a basis is a C-contiguous numpy array with one vector per row (n local entries
 * each), i.e. a column-major n x c matrix with leading dimension n.
 *
 * PDEGEN_ABI_VERSION: bump it when what a field means changes without its layout changing.
 */
#ifndef PDEGEN_KERNELS_H
#define PDEGEN_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <petscksp.h>

#define PDEGEN_ABI_VERSION 1

/*
 * GCRO-DR's Arnoldi cycle on (I - C C^T) A M^{-1}:
 *   basis:  (kk + steps + 1) x n rows [C; V], C given, V[0] (row kk) = r / ||r|| given
 *   search: (kk + steps) x n rows [U; Z], Z[j] = M^{-1} V[j] written here
 *   G:      (kk + steps + 1) x gcols row-major, zero on entry except its identity block
 *   R:      (steps + 1) x steps row-major, zero on entry: the rotated Hessenberg matrix
 *   g:      steps + 1 entries, g[0] = ||r||: the rotated right-hand side
 *   work:   3 * (kk + steps + 2) doubles
 *   done:   the steps done; the residual estimate is |g[done]|
 */
#define PDEGEN_GCRODR_CYCLE_FIELDS(IN, OUT) \
  IN(KSP, ksp) /* for its monitors */ \
  IN(Mat, A) \
  IN(PC, pc) /* NULL: no preconditioner */ \
  IN(Vec, src) /* work Vecs that borrow rows (VecPlaceArray) */ \
  IN(Vec, dst) \
  IN(int64_t, n) /* local length of every row */ \
  IN(double *, basis) \
  IN(double *, search) \
  IN(int64_t, kk) /* recycled rows */ \
  IN(int64_t, steps) /* at most this many Arnoldi steps */ \
  IN(double *, G) \
  IN(int64_t, gcols) \
  IN(double *, R) \
  IN(double *, g) \
  IN(double *, work) \
  IN(double, target) /* stop once the residual estimate is at most this */ \
  IN(int64_t, its0) /* iterations before this cycle, for the monitors */ \
  OUT(int64_t, done)

/*
 * Deflated preconditioned CG iterations: x, r are updated in place from the deflated start;
 * z, p, ap are work rows (n each). With k > 0 every search direction is made A-orthogonal to
 * the k rows of W through Einv = (W^T A W)^{-1} (k x k, row-major), with AW = A W; work has
 * 2 k doubles. The first `window` A-normalised directions and their products go to keep_p,
 * keep_ap (window x n rows each; NULL when window is 0). rnorm is ||r|| on entry.
 * Out: the iterations, the directions kept, and a KSPConvergedReason.
 */
#define PDEGEN_DEFLATED_CG_FIELDS(IN, OUT) \
  IN(KSP, ksp) \
  IN(Mat, A) \
  IN(PC, pc) \
  IN(Vec, src) \
  IN(Vec, dst) \
  IN(int64_t, n) \
  IN(double *, x) \
  IN(double *, r) \
  IN(double *, z) \
  IN(double *, p) \
  IN(double *, ap) \
  IN(int64_t, k) \
  IN(const double *, W) \
  IN(const double *, AW) \
  IN(const double *, Einv) \
  IN(double *, work) \
  IN(double *, keep_p) \
  IN(double *, keep_ap) \
  IN(int64_t, window) \
  IN(double, rnorm) \
  IN(double, target) \
  IN(double, divtol) \
  IN(int64_t, max_it) \
  OUT(int64_t, its) \
  OUT(int64_t, kept) \
  OUT(int64_t, reason)

/*
 * The values of -div(a grad .) on the n^dim interior nodes (pdegen/discretisation/operators.py, the
 * conservative stencil with harmonic face means), written straight into the CSR value array
 * of stencil_pattern(dim, n): rows in C order, columns ascending in each row (the lower
 * neighbours from the slowest axis to the fastest, the diagonal, the upper ones back).
 *   a:      the nodal coefficient on the full (n + 2)^dim node grid, C order; with cells,
 *           the coefficient of the n^dim cells, whose walls lie on the outer faces
 *   cells:  0: the node grid; 1: the cell grid (cell_face_coefficients: a wall face's
 *           coefficient is 2 a of the cell next to it, half a cell away)
 *   faces0..faces2: out, per axis the face coefficients between nodes i and i + 1 on the
 *           interior lines (n + 1 along that axis, n along the others); NULL beyond dim
 *   data:   out, nnz values; nnz must be (2 dim + 1) n^dim - 2 dim n^(dim - 1)
 *   A:      NULL, or a MATSEQAIJ with that pattern (data then NULL): the values go straight
 *           into its own array, which raises its state as pdegen_set_aij_values does
 * The arithmetic is numpy's, operation for operation (2 a b / (a + b); diagonal terms
 * summed axis by axis; off-diagonals (-f) scale), so both paths give the same bits.
 */
#define PDEGEN_DIFFUSION_STENCIL_FIELDS(IN, OUT) \
  IN(const double *, a) \
  IN(int64_t, cells) \
  IN(int64_t, n) \
  IN(int64_t, dim) /* 1, 2 or 3 */ \
  IN(double, scale) /* 1 / h^2 */ \
  IN(double *, faces0) \
  IN(double *, faces1) \
  IN(double *, faces2) \
  IN(double *, data) \
  IN(int64_t, nnz) \
  IN(Mat, A)

/*
 * A sequential AIJ matrix's values replaced by `values` (nnz of them, in its CSR order):
 * one copy into PETSc's own array, which raises the Mat's state (MatSeqAIJGetArrayWrite)
 * so that factorisations and smoothers see the new operator. The pattern must be the Mat's;
 * the count is checked against it.
 */
#define PDEGEN_SET_AIJ_VALUES_FIELDS(IN, OUT) \
  IN(Mat, A) \
  IN(const double *, values) \
  IN(int64_t, nnz)

/*
 * The sum of count values and the sum of their squared deviations from their mean
 * (mean = sum / count), in numpy's order: np.add.reduce of a C-contiguous float64 array,
 * whatever its shape, is one pairwise sum over all of it (blocks of at most 128 values in 8
 * running sums, split in halves above that), added to 0.0. So sum is values.sum() and m2
 * np.square(values - values.mean()).sum(), bit for bit (pdegen/dataset/statistics.py, tested), in
 * two passes and no temporary array instead of numpy's four and two.
 */
#define PDEGEN_SUM_AND_M2_FIELDS(IN, OUT) \
  IN(const double *, values) \
  IN(int64_t, count) \
  OUT(double, sum) \
  OUT(double, m2)

#define PDEGEN_DECLARE_FIELD(type, name) type name;

typedef struct {
  PDEGEN_GCRODR_CYCLE_FIELDS(PDEGEN_DECLARE_FIELD, PDEGEN_DECLARE_FIELD)
} pdegen_gcrodr_cycle_args;

typedef struct {
  PDEGEN_DEFLATED_CG_FIELDS(PDEGEN_DECLARE_FIELD, PDEGEN_DECLARE_FIELD)
} pdegen_deflated_cg_args;

typedef struct {
  PDEGEN_DIFFUSION_STENCIL_FIELDS(PDEGEN_DECLARE_FIELD, PDEGEN_DECLARE_FIELD)
} pdegen_diffusion_stencil_args;

typedef struct {
  PDEGEN_SET_AIJ_VALUES_FIELDS(PDEGEN_DECLARE_FIELD, PDEGEN_DECLARE_FIELD)
} pdegen_set_aij_values_args;

typedef struct {
  PDEGEN_SUM_AND_M2_FIELDS(PDEGEN_DECLARE_FIELD, PDEGEN_DECLARE_FIELD)
} pdegen_sum_and_m2_args;

/* All return a PetscErrorCode (0 on success); the OUT fields are set only on success. */
PETSC_EXTERN PetscErrorCode pdegen_gcrodr_cycle(pdegen_gcrodr_cycle_args *args);
PETSC_EXTERN PetscErrorCode pdegen_deflated_cg(pdegen_deflated_cg_args *args);
PETSC_EXTERN PetscErrorCode pdegen_diffusion_stencil(pdegen_diffusion_stencil_args *args);
PETSC_EXTERN PetscErrorCode pdegen_set_aij_values(pdegen_set_aij_values_args *args);
PETSC_EXTERN PetscErrorCode pdegen_sum_and_m2(pdegen_sum_and_m2_args *args);

/*
 * The layout the compiler gave the argument structs, as text (snprintf's contract: writes
 * at most size bytes including the NUL, returns the length the whole text needs):
 *   abi <PDEGEN_ABI_VERSION>
 *   struct <name> <sizeof>
 *   field <name> <offset> <size> <type as written in the field list>
 */
PETSC_EXTERN size_t pdegen_layout(char *text, size_t size);

#endif
