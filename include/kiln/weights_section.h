/* How a model.so carries its weights (kiln compile's default, "embedded").
 *
 * The linker never sees the bytes: model.so reserves page-aligned zero-initialised memory for
 * them (`kiln_weights_blob`, after .bss, so the dynamic loader maps nothing from the file for
 * it) and, after the link, kiln appends a non-allocated ELF section KILN_WEIGHTS_SECTION
 * holding the bytes, then a kiln_weights_id_v1. When model.so is loaded, its constructor
 * (model_entry.c) finds the section in its own file and maps it over the reservation, read
 * only. The library is written once instead of twice (the linker copied the weights from an
 * object into model.so), which halved a cold compile of BERT-base (docs/perf.md); nothing in
 * the image follows the reservation, so its size is not capped by x86-64's 32-bit offsets;
 * and the descriptor's `weights` pointer is the reservation, so every libkiln_rt reads the
 * weights as before. `kiln_weights_id` (hidden, in model.so) names the bytes the section must
 * hold.
 */
#ifndef KILN_WEIGHTS_SECTION_H
#define KILN_WEIGHTS_SECTION_H

#include <stdint.h>

#define KILN_WEIGHTS_SECTION ".kiln.weights"
#define KILN_WEIGHTS_MAGIC UINT64_C(0x31737468676b6c6b) /* "klkghts1" read as little-endian */
#define KILN_WEIGHTS_ALIGN 4096 /* the section's file offset and the reservation's alignment */

/* What model.so expects (a hidden constant in the library) and what the section's trailer
 * says it holds: the bytes' XXH3 content hash and their count. */
typedef struct kiln_weights_id_v1 {
  uint64_t magic;
  uint64_t hash;
  uint64_t size;
} kiln_weights_id_v1;

#endif /* KILN_WEIGHTS_SECTION_H */
