// Constants through model.h: introspection, double-buffered update, swap, free, read back.
//
// Slots and pins are described in container.h. Every function here holds constMu, so
// writers are serialised; runs never take it (they pin a slot with two atomics).
#include "container.h"
#include "error.h"
#include "validate.h"

#include <kiln/runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

using namespace kiln::rt;

namespace {

constexpr const char *kBufferNames[] = {"active", "inactive"};

// A value checked against its constant: index into desc.constants and the source bytes.
struct Update {
  int32_t index;
  const char *src;
  bool onDevice; // src is memory of a CUDA container's device
};

int findConstant(const kiln_model_desc_v1 &d, const char *name) {
  for (int32_t i = 0; i < d.num_constants; ++i)
    if (d.constants[i].name && std::strcmp(d.constants[i].name, name) == 0) return i;
  return -1;
}

// Checks a caller tensor against constant ci; kind is "value" or "out".
// CUDA containers also take tensors on their device.
int checkConstantTensor(const char *fn, const kiln_container &c, const kiln_constant_desc_v1 &cd,
                        const DLTensor &t) {
  if (c.device && deviceTypeOf(t.device) != kDLCPU && !c.device->isMine(t.device))
    return fail(KILN_ERR_DEVICE, "%s: constant '%s': expected a tensor on cpu or cuda:%d, got %s",
                fn, cd.name, c.device->ordinal, deviceName(t.device).text);
  if (!c.device && deviceTypeOf(t.device) != kDLCPU)
    return fail(KILN_ERR_DEVICE, "%s: constant '%s': expected a CPU tensor, got device type %d", fn,
                cd.name, deviceTypeOf(t.device));
  if (!sameDtype(t.dtype, cd.dtype))
    return fail(KILN_ERR_DTYPE_MISMATCH, "%s: constant '%s': expected dtype %s, got %s", fn,
                cd.name, dtypeName(cd.dtype).text, dtypeName(t.dtype).text);
  if (t.ndim != cd.ndim)
    return fail(KILN_ERR_SHAPE_MISMATCH, "%s: constant '%s': expected rank %d, got %d", fn, cd.name,
                cd.ndim, t.ndim);
  if (t.ndim > 0 && !t.shape)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: constant '%s': shape is NULL", fn, cd.name);
  for (int32_t d = 0; d < t.ndim; ++d)
    if (t.shape[d] != cd.dims[d])
      return fail(KILN_ERR_SHAPE_MISMATCH, "%s: constant '%s' dim %d: expected %lld, got %lld", fn,
                  cd.name, d, static_cast<long long>(cd.dims[d]),
                  static_cast<long long>(t.shape[d]));
  if (!isContiguous(t))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: constant '%s': tensor is not contiguous", fn,
                cd.name);
  if (!t.data && cd.nbytes)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: constant '%s': data is NULL", fn, cd.name);
  return KILN_OK;
}

int checkBuffer(const char *fn, int32_t buffer) {
  if (buffer == KILN_CONSTANTS_ACTIVE || buffer == KILN_CONSTANTS_INACTIVE) return KILN_OK;
  return fail(KILN_ERR_INVALID_ARGUMENT,
              "%s: buffer is %d; use KILN_CONSTANTS_ACTIVE (0) or KILN_CONSTANTS_INACTIVE (1)", fn,
              buffer);
}

// A new owned set laid out like the model's blob (device memory for a CUDA container);
// contents copied from `from` unless NULL. Returns nullptr with the error recorded.
std::unique_ptr<ConstantSet> newOwnedSet(const kiln_container &c, const ConstantSet *from) {
  const kiln_model_desc_v1 &d = *c.desc;
  uint64_t size = 0;
  for (int32_t i = 0; i < d.num_constants; ++i)
    size = std::max<uint64_t>(size, d.constants[i].offset + d.constants[i].nbytes);
  size_t rounded = (size + 63) / 64 * 64;
  auto set = std::unique_ptr<ConstantSet>(new (std::nothrow) ConstantSet());
  if (!set) {
    fail(KILN_ERR_OUT_OF_MEMORY, "kiln_update_constants: out of memory");
    return nullptr;
  }
  char *mem = nullptr;
  if (c.device) {
    void *p = nullptr;
    if (c.device->alloc(rounded, &p, "kiln_update_constants: allocating device constants"))
      return nullptr;
    mem = static_cast<char *>(p);
    set->device = c.device.get();
  } else {
    mem = static_cast<char *>(std::aligned_alloc(64, rounded ? rounded : 64));
  }
  if (!mem) {
    fail(KILN_ERR_OUT_OF_MEMORY, "kiln_update_constants: cannot allocate %llu bytes of constants",
         static_cast<unsigned long long>(rounded));
    return nullptr;
  }
  set->owned = mem;
  set->base = mem;
  set->size = size;
  set->ptrs.assign(d.num_constants > 0 ? d.num_constants : 1, nullptr);
  for (int32_t i = 0; i < d.num_constants; ++i)
    set->ptrs[i] = mem + d.constants[i].offset;
  if (from && c.device) {
    // Device sets share the blob's layout: one copy moves them all.
    if (c.device->copy(mem, true, from->base, true, size, "kiln_update_constants")) return nullptr;
  } else if (from) {
    for (int32_t i = 0; i < d.num_constants; ++i)
      std::memcpy(set->ptrs[i], from->ptrs[i], d.constants[i].nbytes);
    from->derived->releaseAllSource(); // the copy faulted in model.so's / the file's pages
  }
  return set;
}

int apply(const kiln_container &c, ConstantSet &set, const std::vector<Update> &updates) {
  const kiln_model_desc_v1 &d = *c.desc;
  for (const Update &u : updates) {
    if (!c.device) {
      std::memcpy(set.ptrs[u.index], u.src, d.constants[u.index].nbytes);
      continue;
    }
    if (int st = c.device->copy(set.ptrs[u.index], true, u.src, u.onDevice,
                                d.constants[u.index].nbytes, "kiln_update_constants"))
      return st;
  }
  return KILN_OK;
}

} // namespace

extern "C" {

KILN_RT_API int kiln_rt_num_constants(const kiln_container *c, int32_t *out) {
  if (!c || !out) return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_num_constants: NULL argument");
  *out = c->desc->num_constants;
  return KILN_OK;
}

KILN_RT_API int kiln_rt_constant_info(const kiln_container *c, int32_t index,
                                      kiln_tensor_info *out) {
  if (!c || !out)
    return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_constant_info: %s is NULL",
                c ? "out" : "container");
  if (out->struct_size < sizeof(kiln_tensor_info))
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "kiln_constant_info: kiln_tensor_info.struct_size is %zu, expected at least %zu",
                out->struct_size, sizeof(kiln_tensor_info));
  const kiln_model_desc_v1 &d = *c->desc;
  if (index < 0 || index >= d.num_constants)
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "kiln_constant_info: index %d out of range (model has %d constants)", index,
                d.num_constants);
  const kiln_constant_desc_v1 &cd = d.constants[index];
  out->name = cd.name;
  out->dtype = cd.dtype;
  out->ndim = cd.ndim;
  out->dims = cd.dims;
  out->dim_names = c->nullDimNames.data();
  out->dim_min = cd.dims; // static: min == max == dim
  out->dim_max = cd.dims;
  return KILN_OK;
}

KILN_RT_API int kiln_rt_update_constants(kiln_container *c, int32_t buffer,
                                         const char *const *names, const DLTensor *values,
                                         int32_t count, uint32_t flags) {
  const char *fn = "kiln_update_constants";
  if (!c) return fail(KILN_ERR_INVALID_ARGUMENT, "%s: container is NULL", fn);
  if (int st = checkBuffer(fn, buffer)) return st;
  if (count < 0 || (count > 0 && (!names || !values)))
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: count is %d with names/values %s", fn, count,
                count < 0 ? "(negative count)" : "NULL");
  if (flags & ~KILN_UPDATE_REQUIRE_ALL)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: unknown flag bits 0x%x", fn,
                flags & ~KILN_UPDATE_REQUIRE_ALL);
  const kiln_model_desc_v1 &d = *c->desc;
  try {
    // Check everything before touching anything.
    std::vector<Update> updates;
    updates.reserve(count);
    std::vector<char> seen(d.num_constants > 0 ? d.num_constants : 1, 0);
    for (int32_t i = 0; i < count; ++i) {
      if (!names[i]) return fail(KILN_ERR_INVALID_ARGUMENT, "%s: names[%d] is NULL", fn, i);
      int32_t ci = findConstant(d, names[i]);
      if (ci < 0)
        return fail(KILN_ERR_NOT_FOUND, "%s: the model has no constant named '%s'", fn, names[i]);
      if (seen[ci])
        return fail(KILN_ERR_INVALID_ARGUMENT, "%s: constant '%s' given twice", fn, names[i]);
      seen[ci] = 1;
      if (int st = checkConstantTensor(fn, *c, d.constants[ci], values[i])) return st;
      updates.push_back({ci, static_cast<const char *>(values[i].data) + values[i].byte_offset,
                         deviceTypeOf(values[i].device) != kDLCPU});
    }
    if (flags & KILN_UPDATE_REQUIRE_ALL)
      for (int32_t ci = 0; ci < d.num_constants; ++ci)
        if (!seen[ci])
          return fail(KILN_ERR_INVALID_ARGUMENT,
                      "%s: KILN_UPDATE_REQUIRE_ALL is set but constant '%s' is missing (%d of %d "
                      "given)",
                      fn, d.constants[ci].name, count, d.num_constants);
    bool full = count == d.num_constants && (count > 0 || (flags & KILN_UPDATE_REQUIRE_ALL));

    std::lock_guard<std::mutex> lock(c->constMu);
    int active = c->activeSlot.load();
    if (buffer == KILN_CONSTANTS_ACTIVE) {
      // Copy, update, publish; the old active set goes once its runs finish.
      int spare = 0;
      while (spare == active || spare == c->inactiveSlot)
        ++spare;
      c->drain(spare); // transient pins from runs that raced an earlier swap
      auto set = newOwnedSet(*c, full ? nullptr : c->slots[active].get());
      if (!set) return KILN_ERR_OUT_OF_MEMORY;
      if (int st = apply(*c, *set, updates)) return st;
      set->token = c->nextToken++;
      c->slots[spare] = std::move(set);
      c->activeSlot.store(spare);
      c->drain(active);
      c->slots[active].reset();
      return KILN_OK;
    }
    int slot = c->inactiveSlot;
    if (slot < 0) {
      slot = 0;
      while (slot == active)
        ++slot;
      c->drain(slot); // a slot freed earlier may still have a transient pin
      auto set = newOwnedSet(*c, full ? nullptr : c->slots[active].get());
      if (!set) return KILN_ERR_OUT_OF_MEMORY;
      c->slots[slot] = std::move(set);
      c->inactiveSlot = slot;
    } else if (!c->slots[slot]->owned) {
      // The embedded or mapped blob is read-only: write into an owned copy.
      c->drain(slot);
      auto set = newOwnedSet(*c, full ? nullptr : c->slots[slot].get());
      if (!set) return KILN_ERR_OUT_OF_MEMORY;
      c->slots[slot] = std::move(set);
    }
    c->drain(slot); // runs that started before the last swap may still read it
    if (int st = apply(*c, *c->slots[slot], updates)) return st;
    c->slots[slot]->contentsChanged(c->nextToken++); // drops weights derived from the old
    return KILN_OK;
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
}

KILN_RT_API int kiln_rt_swap_constants(kiln_container *c) {
  if (!c) return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_swap_constants: container is NULL");
  std::lock_guard<std::mutex> lock(c->constMu);
  if (c->inactiveSlot < 0)
    return fail(KILN_ERR_INVALID_STATE,
                "kiln_swap_constants: there is no inactive constant buffer; fill one with "
                "kiln_update_constants(..., KILN_CONSTANTS_INACTIVE, ...) first");
  int old = c->activeSlot.load();
  c->activeSlot.store(c->inactiveSlot);
  c->inactiveSlot = old;
  c->drain(old);
  return KILN_OK;
}

KILN_RT_API int kiln_rt_free_inactive_constants(kiln_container *c) {
  if (!c) return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_free_inactive_constants: container is NULL");
  std::lock_guard<std::mutex> lock(c->constMu);
  int slot = c->inactiveSlot;
  if (slot < 0) return KILN_OK;
  c->drain(slot);
  c->slots[slot].reset();
  c->inactiveSlot = -1;
  return KILN_OK;
}

KILN_RT_API int kiln_rt_read_constant(kiln_container *c, int32_t buffer, const char *name,
                                      DLTensor *out) {
  const char *fn = "kiln_read_constant";
  if (!c || !name || !out)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                !c      ? "container"
                : !name ? "name"
                        : "out");
  if (int st = checkBuffer(fn, buffer)) return st;
  const kiln_model_desc_v1 &d = *c->desc;
  int32_t ci = findConstant(d, name);
  if (ci < 0) return fail(KILN_ERR_NOT_FOUND, "%s: the model has no constant named '%s'", fn, name);
  if (int st = checkConstantTensor(fn, *c, d.constants[ci], *out)) return st;
  std::lock_guard<std::mutex> lock(c->constMu);
  int slot = buffer == KILN_CONSTANTS_ACTIVE ? c->activeSlot.load() : c->inactiveSlot;
  if (slot < 0)
    return fail(KILN_ERR_INVALID_STATE, "%s: there is no %s constant buffer", fn,
                kBufferNames[buffer]);
  char *dst = static_cast<char *>(out->data) + out->byte_offset;
  if (c->device)
    return c->device->copy(dst, deviceTypeOf(out->device) != kDLCPU, c->slots[slot]->ptrs[ci], true,
                           d.constants[ci].nbytes, fn);
  std::memcpy(dst, c->slots[slot]->ptrs[ci], d.constants[ci].nbytes);
  return KILN_OK;
}

} // extern "C"
