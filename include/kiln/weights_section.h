/* How a model.so carries its weights (kiln compile's default, "embedded").
 *
 * The linker never sees the bytes: after the link, kiln appends a non-allocated ELF section
 * KILN_WEIGHTS_SECTION to model.so holding them, then a kiln_weights_id_v1. When model.so is
 * loaded, its constructor (model_entry.c) finds the section in its own file, checks that the
 * id matches `kiln_weights_id` (hidden, in model.so: what its code was built with; only the
 * id, not every byte), maps the bytes read-only and points the descriptor's `weights` at
 * them, so every libkiln_rt reads the weights as before. The library is written once instead
 * of twice (the linker copied the weights from an object into model.so), which halved a cold
 * compile of BERT-base (docs/perf.md), and the weights are outside the image: no 2 GiB limit
 * from x86-64's 32-bit offsets, and like external weights a read-only file mapping that
 * costs no commit charge. Change KILN_WEIGHTS_MAGIC with the layout: it is in the id, so in
 * the cache keys of the objects and of the linked library.
 */
#ifndef KILN_WEIGHTS_SECTION_H
#define KILN_WEIGHTS_SECTION_H

#include <stdint.h>

#define KILN_WEIGHTS_SECTION ".kiln.weights"
#define KILN_WEIGHTS_MAGIC UINT64_C(0x31737468676b6c6b) /* "klkghts1" read as little-endian */
/* The section's file offset: a page (the loader maps from the page holding any offset; the
 * bytes must start 64-byte aligned to be mapped rather than copied). */
#define KILN_WEIGHTS_ALIGN 4096

/* What model.so expects (a hidden constant in the library) and what the section's trailer
 * says it holds: the bytes' XXH3 content hash and their count. */
typedef struct kiln_weights_id_v1 {
  uint64_t magic;
  uint64_t hash;
  uint64_t size;
} kiln_weights_id_v1;

#endif /* KILN_WEIGHTS_SECTION_H */
