/*
 * Compiled assembly of pdegen's matrices (pdegen/discretisation/operators.py): the diffusion
 * stencil's values written in CSR order, straight into a PETSc Mat where one is given, and a
 * sequential AIJ matrix's values replaced in one copy. Arguments: kernels.h.
 */
#include <inttypes.h>

#include "kernels.h"

/*
 * The diffusion stencil's values (kernels.h). Why compiled: numpy needs a harmonic mean per
 * face, sums per axis and a scatter of every value through an index array into the CSR
 * order, 4.3 ms for a 421 x 421 Darcy sample and 10 ms at 64^3, most of it the scatter;
 * one pass that writes each row's values in order takes a fraction of that. Axes are
 * padded to three: a 2D grid is a 1 x n x n one whose first axis has no neighbours.
 *
 * Into a Mat (A given): the values are written where PETSc keeps them, instead of into an
 * array that pdegen_set_aij_values then copies there: 7 MB written and 7 MB read less per
 * 421 x 421 sample, 14 and 14 at 64^3 (pdegen/discretisation/operators.py, DiffusionMatrix).
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
  const int64_t n = args->n, dim = args->dim, lead = 3 - dim, cells = args->cells != 0;
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
    full[ax] = real ? (cells ? n : n + 2) : 1;
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
  /* faces: between full-grid nodes j and j + 1 along ax, interior along the others; on
     cells between cells j - 1 and j, a wall face (j = 0 or n) taking 2 a of its one cell */
  for (int ax = lead; ax < 3; ax++) {
    const int64_t o[3] = {lead <= 0 && !cells ? 1 : 0, lead <= 1 && !cells ? 1 : 0, !cells}; /* interior offset */
    int64_t       e[3] = {m[0], m[1], m[2]};
    e[ax] = n + 1;
    for (int64_t j0 = 0; j0 < e[0]; j0++)
      for (int64_t j1 = 0; j1 < e[1]; j1++)
        for (int64_t j2 = 0; j2 < e[2]; j2++) {
          int64_t j[3] = {j0, j1, j2}, lo;
          double *face = &fx[ax][j0 * fstride[ax][0] + j1 * fstride[ax][1] + j2];
          for (int b = 0; b < 3; b++) if (b != ax) j[b] += o[b];
          if (cells && (j[ax] == 0 || j[ax] == n)) { /* a wall: the cell on its inner side */
            if (j[ax] == n) j[ax] = n - 1;
            *face = 2.0 * a[j[0] * astride[0] + j[1] * astride[1] + j[2] * astride[2]];
            continue;
          }
          if (cells) j[ax] -= 1; /* the face's lower cell */
          lo = j[0] * astride[0] + j[1] * astride[1] + j[2] * astride[2];
          {
            const double x = a[lo], y = a[lo + astride[ax]];
            *face = 2.0 * x * y / (x + y);
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
 * New values for a matrix whose pattern is unchanged (kernels.h). Why not MatSetValuesCSR:
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
