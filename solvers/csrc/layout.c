/*
 * pdegen_layout: the layout the compiler gave every argument struct of kernels.h (each
 * field's name, offset, size and type, each struct's size, the ABI version), which
 * solvers/native/ compares with the ctypes structures it built from the same header before
 * it calls any kernel.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "kernels.h"

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
