/* model.h entry points of a kiln model.so, compiled into every generated model.so.
 *
 * Each function forwards to its kiln_rt_* twin in libkiln_rt; create passes this
 * library's descriptor. The generated code defines `kiln_model_desc` (from C++ it must be
 * `extern "C"`). The descriptor is bound inside this library (hidden), so two model.so
 * files loaded into one process never see each other's descriptor. Its constructor maps the
 * model's embedded weights from the library's own file (include/kiln/weights_section.h); where
 * that failed, kiln_container_create fails with the reason (kiln_last_error).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr, pread */
#endif
#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <kiln/runtime.h>
#include <kiln/weights_section.h>

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern const kiln_model_desc_v1 kiln_model_desc __attribute__((visibility("hidden")));

/* ---- the weights section (include/kiln/weights_section.h) ----
 * Weak: a model built with external weights (or a test's hand-written model) has no id and
 * maps nothing. */
extern const kiln_weights_id_v1 kiln_weights_id __attribute__((weak, visibility("hidden")));

/* C99 has no static assertion: a negative array size fails the build where off_t cannot
 * address a file past 2 GiB. */
typedef char kiln_off_t_is_64_bit[sizeof(off_t) == 8 ? 1 : -1];

static char weights_error[640]; /* set once, by the constructor, when the weights are missing */
static __thread int weights_error_is_last; /* this thread's last kiln call failed for it */
/* What libkiln_rt gets: kiln_model_desc, or with embedded weights a read-only copy of it
 * pointing at them (the generated descriptor stays const, in RELRO). */
static const kiln_model_desc_v1 *model_desc = &kiln_model_desc;
static void *weights_mapping;       /* what the destructor releases */
static size_t weights_mapping_size; /* 0: weights_mapping is malloc'd */
static int live_containers;         /* created here and not yet destroyed */

static int read_at(int fd, uint64_t at, void *p, size_t n) {
  char *c = (char *)p;
  while (n > 0) {
    ssize_t got = pread(fd, c, n, (off_t)at);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return 0;
    c += got, at += (uint64_t)got, n -= (size_t)got;
  }
  return 1;
}

/* The section's file offset in the ELF file fd, or 0 (with weights_error set) when it has
 * none of the expected size and id. Only the id is checked, not every byte (that would read
 * all the weights at load). */
static uint64_t find_weights_section(int fd, const char *path) {
  Elf64_Ehdr eh;
  Elf64_Shdr sh, names;
  char name[sizeof KILN_WEIGHTS_SECTION];
  kiln_weights_id_v1 found;
  if (!read_at(fd, 0, &eh, sizeof eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_shentsize != sizeof sh || eh.e_shstrndx >= eh.e_shnum ||
      !read_at(fd, eh.e_shoff + (uint64_t)eh.e_shstrndx * sizeof sh, &names, sizeof names)) {
    snprintf(weights_error, sizeof weights_error,
             "%s: cannot read its ELF section headers (is the file truncated?)", path);
    return 0;
  }
  for (unsigned i = 0; i < eh.e_shnum; ++i) {
    if (!read_at(fd, eh.e_shoff + (uint64_t)i * sizeof sh, &sh, sizeof sh) ||
        sh.sh_name >= names.sh_size ||
        !read_at(fd, names.sh_offset + sh.sh_name, name, sizeof name) ||
        memcmp(name, KILN_WEIGHTS_SECTION, sizeof name) != 0)
      continue;
    if (sh.sh_size != kiln_weights_id.size + sizeof found ||
        !read_at(fd, sh.sh_offset + kiln_weights_id.size, &found, sizeof found) ||
        memcmp(&found, &kiln_weights_id, sizeof found) != 0) {
      snprintf(weights_error, sizeof weights_error,
               "%s: its weights section holds other weights than this model's code was built "
               "with (was the file replaced or edited after it was loaded?)",
               path);
      return 0;
    }
    return sh.sh_offset;
  }
  snprintf(weights_error, sizeof weights_error,
           "%s has no " KILN_WEIGHTS_SECTION " section (removed by a tool such as llvm-strip, "
           "which drops sections outside segments; GNU strip keeps it), or is truncated",
           path);
  return 0;
}

/* `bytes` of fd from file offset `from` (page aligned), read-only, at an address one page off
 * the file offset modulo 2 MiB. Where they were congruent (as mmap places large file
 * mappings), a read of a small constant in place mapped its whole 2 MiB page-cache folio,
 * released weights included (BERT-base: 455 MB peak RSS against 383); a folio that straddles
 * two page-table pages is not mapped whole. */
static void *map_off_huge_alignment(int fd, uint64_t from, size_t bytes, uint64_t page) {
  const uintptr_t huge = (uintptr_t)2 << 20;
  const size_t span = bytes + 2 * huge;
  char *area =
      (char *)mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (area == MAP_FAILED) return mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, (off_t)from);
  const uintptr_t base = ((uintptr_t)area + huge - 1) / huge * huge;
  char *at = (char *)(base + (uintptr_t)((from + page) % huge));
  void *p = mmap(at, bytes, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, (off_t)from);
  /* The rest of the reservation goes back: before the mapping, and after its last page. A
   * failed MAP_FIXED may already have dropped its range, which another thread's mapping may
   * now hold, so that range is left alone then (at worst reserved address space stays). */
  const size_t mapped = (size_t)((bytes + page - 1) / page * page);
  if (at > area) munmap(area, (size_t)(at - area));
  if (at + mapped < area + span) munmap(at + mapped, (size_t)(area + span - (at + mapped)));
  return p;
}

/* The weights at section offset `at` of fd: mapped read-only from the page cache (the mapping
 * starts at the page holding them, which a rewritten file may have moved off a page
 * boundary), or, where they do not start 64-byte aligned, copied into aligned memory. */
static const void *load_weights(int fd, uint64_t at, uint64_t size, const char *path) {
  const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), lead = at % page;
  if (at % 64 == 0) {
    void *p = map_off_huge_alignment(fd, at - lead, (size_t)(lead + size), page);
    if (p != MAP_FAILED) {
      weights_mapping = p;
      weights_mapping_size = (size_t)(lead + size);
      return (const char *)p + lead;
    }
    snprintf(weights_error, sizeof weights_error, "cannot map the weights of %s: %s", path,
             strerror(errno));
    return NULL;
  }
  void *copy = NULL;
  if (posix_memalign(&copy, 64, (size_t)size) != 0) copy = NULL;
  if (!copy || !read_at(fd, at, copy, (size_t)size)) {
    snprintf(weights_error, sizeof weights_error, "cannot read the weights of %s%s", path,
             copy ? "" : ": out of memory");
    free(copy);
    return NULL;
  }
  weights_mapping = copy;
  return copy;
}

/* A read-only copy of the descriptor with `weights` set, or NULL (weights_error set). */
static const kiln_model_desc_v1 *describe(const void *weights) {
  void *page = mmap(NULL, sizeof kiln_model_desc, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) {
    snprintf(weights_error, sizeof weights_error, "out of memory loading the model");
    return NULL;
  }
  kiln_model_desc_v1 *d = (kiln_model_desc_v1 *)page;
  memcpy(d, &kiln_model_desc, sizeof kiln_model_desc);
  d->weights = (const uint8_t *)weights;
  mprotect(page, sizeof kiln_model_desc, PROT_READ);
  return d;
}

/* When the library is loaded: the descriptor's weights from its own file. */
__attribute__((constructor)) static void kiln_map_weights(void) {
  Dl_info info;
  if (!&kiln_weights_id || kiln_weights_id.size == 0) return;
  if (!dladdr((const void *)&kiln_weights_id, &info) || !info.dli_fname) {
    snprintf(weights_error, sizeof weights_error, "cannot find the model library's own file");
    return;
  }
  int fd = open(info.dli_fname, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(weights_error, sizeof weights_error, "cannot open %s to map its weights: %s",
             info.dli_fname, strerror(errno));
    return;
  }
  uint64_t at = find_weights_section(fd, info.dli_fname);
  const void *weights = at != 0 ? load_weights(fd, at, kiln_weights_id.size, info.dli_fname) : 0;
  const kiln_model_desc_v1 *d = weights ? describe(weights) : NULL;
  if (d) model_desc = d;
  close(fd);
}

/* When the library is unloaded (dlclose) or the process exits. At exit other threads may
 * still be running this model's containers, so with any container alive the weights stay
 * mapped (the process is ending anyway). */
__attribute__((destructor)) static void kiln_unmap_weights(void) {
  if (__atomic_load_n(&live_containers, __ATOMIC_ACQUIRE) != 0) return;
  if (model_desc != &kiln_model_desc) munmap((void *)model_desc, sizeof kiln_model_desc);
  if (weights_mapping_size)
    munmap(weights_mapping, weights_mapping_size);
  else
    free(weights_mapping);
}

/* Every forwarder starts here: the thread's last error is then the runtime's again (the
 * thread-local flag is touched only where the weights failed to load). */
#define KILN_ENTER()                                                                               \
  do {                                                                                             \
    if (weights_error[0]) weights_error_is_last = 0;                                               \
  } while (0)

/* For tools (kiln inspect): why this model.so's embedded weights did not load, or NULL. */
KILN_API const char *kiln_model_weights_error(void) {
  return weights_error[0] ? weights_error : NULL;
}

/* ABI-4 functions are weak references: model.so links with -z now, and a strong reference to
 * a symbol an older libkiln_rt lacks would fail inside dlopen. With a weak one the library
 * loads, and the forwarder returns KILN_ERR_VERSION_MISMATCH instead. That status cannot carry
 * a message (the old runtime's kiln_last_error is not ours to set), so kiln_last_error() then
 * shows whatever the thread's previous error was; the status alone means "libkiln_rt is older
 * than ABI 4: upgrade it". */
#pragma weak kiln_rt_run_options_init
#pragma weak kiln_rt_run_v2
#pragma weak kiln_rt_run_alloc_v2
#pragma weak kiln_rt_alloc_tensor
#pragma weak kiln_rt_copy_tensor
#pragma weak kiln_rt_set_profiler

KILN_API const kiln_model_desc_v1 *kiln_model_descriptor(void) {
  return model_desc;
}

KILN_API void kiln_container_options_init(kiln_container_options *options) {
  KILN_ENTER();
  kiln_rt_container_options_init(options);
}

KILN_API const char *kiln_last_error(void) {
  return weights_error_is_last ? weights_error : kiln_rt_last_error();
}

KILN_API uint32_t kiln_abi_version(void) {
  KILN_ENTER();
  return kiln_rt_abi_version();
}

KILN_API int kiln_container_create(const kiln_container_options *options, kiln_container **out) {
  /* Weights given as a file (weights_path) replace the missing section. */
  weights_error_is_last = weights_error[0] && !(options && options->weights_path);
  if (weights_error_is_last) {
    if (out) *out = NULL;
    return KILN_ERR_NOT_FOUND;
  }
  int status = kiln_rt_container_create_v1(model_desc, options, out);
  if (status == KILN_OK) __atomic_add_fetch(&live_containers, 1, __ATOMIC_RELEASE);
  return status;
}

KILN_API int kiln_container_destroy(kiln_container *container) {
  KILN_ENTER();
  int status = kiln_rt_container_destroy(container);
  if (status == KILN_OK && container) __atomic_sub_fetch(&live_containers, 1, __ATOMIC_RELEASE);
  return status;
}

KILN_API int kiln_num_inputs(const kiln_container *c, int32_t *out) {
  KILN_ENTER();
  return kiln_rt_num_inputs(c, out);
}

KILN_API int kiln_num_outputs(const kiln_container *c, int32_t *out) {
  KILN_ENTER();
  return kiln_rt_num_outputs(c, out);
}

KILN_API int kiln_input_info(const kiln_container *c, int32_t index, kiln_tensor_info *out) {
  KILN_ENTER();
  return kiln_rt_input_info(c, index, out);
}

KILN_API int kiln_output_info(const kiln_container *c, int32_t index, kiln_tensor_info *out) {
  KILN_ENTER();
  return kiln_rt_output_info(c, index, out);
}

KILN_API int kiln_run(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                      DLTensor *outputs, int32_t num_outputs) {
  KILN_ENTER();
  return kiln_rt_run(c, inputs, num_inputs, outputs, num_outputs);
}

KILN_API int kiln_output_dims(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                              int64_t *const *out_dims) {
  KILN_ENTER();
  return kiln_rt_output_dims(c, inputs, num_inputs, out_dims);
}

KILN_API int kiln_run_alloc(kiln_container *c, const DLTensor *inputs, int32_t num_inputs,
                            DLManagedTensor **outputs, int32_t num_outputs) {
  KILN_ENTER();
  return kiln_rt_run_alloc(c, inputs, num_inputs, outputs, num_outputs);
}

KILN_API int kiln_run_minimal(kiln_container *c, void *const *inputs, void *const *outputs) {
  KILN_ENTER();
  return kiln_rt_run_minimal(c, inputs, outputs);
}

KILN_API int kiln_num_constants(const kiln_container *c, int32_t *out) {
  KILN_ENTER();
  return kiln_rt_num_constants(c, out);
}

KILN_API int kiln_constant_info(const kiln_container *c, int32_t index, kiln_tensor_info *out) {
  KILN_ENTER();
  return kiln_rt_constant_info(c, index, out);
}

KILN_API int kiln_update_constants(kiln_container *c, int32_t buffer, const char *const *names,
                                   const DLTensor *values, int32_t count, uint32_t flags) {
  KILN_ENTER();
  return kiln_rt_update_constants(c, buffer, names, values, count, flags);
}

KILN_API int kiln_swap_constants(kiln_container *c) {
  KILN_ENTER();
  return kiln_rt_swap_constants(c);
}

KILN_API int kiln_free_inactive_constants(kiln_container *c) {
  KILN_ENTER();
  return kiln_rt_free_inactive_constants(c);
}

KILN_API int kiln_read_constant(kiln_container *c, int32_t buffer, const char *name,
                                DLTensor *out) {
  KILN_ENTER();
  return kiln_rt_read_constant(c, buffer, name, out);
}

/* ---- ABI v4 (weak: see the top of this file) ---- */

KILN_API void kiln_run_options_init(kiln_run_options *options) {
  KILN_ENTER();
  if (kiln_rt_run_options_init) {
    kiln_rt_run_options_init(options);
  } else if (options) { /* same defaults, for a runtime that predates ABI 4 */
    kiln_run_options zero = {0};
    *options = zero;
    options->struct_size = sizeof *options;
  }
}

KILN_API int kiln_run_v2(kiln_container *c, const kiln_run_options *options, const DLTensor *inputs,
                         int32_t num_inputs, DLTensor *outputs, int32_t num_outputs) {
  KILN_ENTER();
  if (!kiln_rt_run_v2) return KILN_ERR_VERSION_MISMATCH;
  return kiln_rt_run_v2(c, options, inputs, num_inputs, outputs, num_outputs);
}

KILN_API int kiln_run_alloc_v2(kiln_container *c, const kiln_run_options *options,
                               const DLTensor *inputs, int32_t num_inputs,
                               DLManagedTensor **outputs, int32_t num_outputs) {
  KILN_ENTER();
  if (!kiln_rt_run_alloc_v2) return KILN_ERR_VERSION_MISMATCH;
  return kiln_rt_run_alloc_v2(c, options, inputs, num_inputs, outputs, num_outputs);
}

KILN_API int kiln_alloc_tensor(kiln_container *c, DLDataType dtype, int32_t ndim,
                               const int64_t *dims, DLManagedTensor **out) {
  KILN_ENTER();
  if (!kiln_rt_alloc_tensor) return KILN_ERR_VERSION_MISMATCH;
  return kiln_rt_alloc_tensor(c, dtype, ndim, dims, out);
}

KILN_API int kiln_copy_tensor(kiln_container *c, DLTensor *dst, const DLTensor *src) {
  KILN_ENTER();
  if (!kiln_rt_copy_tensor) return KILN_ERR_VERSION_MISMATCH;
  return kiln_rt_copy_tensor(c, dst, src);
}

/* ---- per-kernel profiling (weak: added after ABI 4) ---- */

KILN_API int kiln_set_profiler(kiln_container *c, kiln_profile_fn fn, void *user) {
  KILN_ENTER();
  if (!kiln_rt_set_profiler) return KILN_ERR_VERSION_MISMATCH;
  return kiln_rt_set_profiler(c, fn, user);
}
