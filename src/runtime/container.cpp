// Container lifetime: option checks, version checks, constants, runners.
#include "container.h"

#include "error.h"
#include <cstddef>

#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <thread>

#include <sched.h>

using kiln::rt::fail;

kiln::rt::Runner *kiln_container::acquire() {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return !freeRunners.empty(); });
  kiln::rt::Runner *r = freeRunners.back();
  freeRunners.pop_back();
  lock.unlock();
  if (device) reclaimPins(r, false); // pins of its finished runs whose GPU work is done
  return r;
}

void kiln_container::release(kiln::rt::Runner *r) {
  {
    std::lock_guard<std::mutex> lock(mu);
    freeRunners.push_back(r);
  }
  cv.notify_one();
}

int kiln_container::pinConstants() {
  for (;;) {
    int s = activeSlot.load(std::memory_order_seq_cst);
    pins[s].fetch_add(1, std::memory_order_seq_cst);
    if (activeSlot.load(std::memory_order_seq_cst) == s) return s;
    pins[s].fetch_sub(1, std::memory_order_relaxed); // swapped meanwhile: retry
  }
}

void kiln_container::drain(int slot) {
  // Runs are short compared with weight updates; yielding keeps this simple and lets the
  // run path stay free of locks and notifications.
  while (pins[slot].load(std::memory_order_acquire) != 0) {
    if (device)
      for (auto &r : runners) {
        bool pinned;
        {
          std::lock_guard<std::mutex> lock(r->pinMu);
          pinned = r->pendingPins[slot] != 0;
        }
        if (pinned) reclaimPins(r.get(), true);
      }
    std::this_thread::yield();
  }
}

void kiln_container::reclaimPins(kiln::rt::Runner *r, bool wait) {
  std::lock_guard<std::mutex> lock(r->pinMu);
  bool any = false;
  for (int n : r->pendingPins)
    any |= n != 0;
  if (!any) return;
  // A failed query or wait keeps the pins: weights leak rather than being freed under a
  // kernel. The done event covers every earlier run of the runner (runs on another stream
  // first wait for it), so its completion releases them all.
  if (wait) {
    char err[256];
    if (r->plugin->runner_wait(r->cuda, err, sizeof err) != KILN_OK) return;
  } else if (r->plugin->runner_query(r->cuda) != 1) {
    return;
  }
  for (int s = 0; s < kSlots; ++s) {
    if (r->pendingPins[s]) unpinConstants(s, r->pendingPins[s]);
    r->pendingPins[s] = 0;
  }
}

namespace kiln::rt {
namespace {

constexpr int kCudaRunners = 2;

// The CPUs this process may run on (its affinity mask: taskset, a container's cpuset), as
// libgomp counts them; hardware_concurrency() counts every CPU of the machine, and more
// OpenMP threads than usable CPUs make them wait on each other.
int hardwareThreads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

int checkDesc(const kiln_model_desc_v1 *desc) {
  if (!desc)
    return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_container_create: model descriptor is NULL");
  // The descriptor is append-only: ABI 1 ended before bind_shapes_v2. Later fields are
  // read only when struct_size covers them (validate.cpp).
  const size_t abi1Size = offsetof(kiln_model_desc_v1, bind_shapes_v2);
  if (desc->struct_size < abi1Size)
    return fail(KILN_ERR_VERSION_MISMATCH,
                "model descriptor is %zu bytes, smaller than the ABI-1 descriptor (%zu); the "
                "model.so is corrupt or was not built by kiln",
                desc->struct_size, abi1Size);
  if (desc->abi_version > KILN_ABI_VERSION)
    return fail(KILN_ERR_VERSION_MISMATCH,
                "model needs kiln ABI v%u but this libkiln_rt provides v%d; upgrade libkiln_rt",
                desc->abi_version, KILN_ABI_VERSION);
  if (desc->shim_version > KILN_SHIM_VERSION)
    return fail(KILN_ERR_VERSION_MISMATCH,
                "model needs kiln shim v%u but this libkiln_rt provides v%d; upgrade libkiln_rt",
                desc->shim_version, KILN_SHIM_VERSION);
  if (desc->num_inputs < 0 || desc->num_outputs < 0 || desc->num_constants < 0 ||
      desc->num_symbols < 0 || !desc->bind_shapes || !desc->output_dims || !desc->run)
    return fail(KILN_ERR_INTERNAL, "model descriptor is malformed (negative counts or missing "
                                   "functions)");
  return KILN_OK;
}

int checkOptions(const kiln_model_desc_v1 &desc, const kiln_container_options &o,
                 DeviceSpec &spec) {
  if (o.struct_size < sizeof(kiln_container_options))
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "kiln_container_options.struct_size is %zu, expected at least %zu; call "
                "kiln_container_options_init first",
                o.struct_size, sizeof(kiln_container_options));
  for (uint32_t r : o.reserved)
    if (r != 0)
      return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_container_options.reserved must be zero");
  if (o.flags != KILN_FLAG_NONE)
    return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_container_options.flags has unknown bits 0x%x",
                o.flags);
  if (o.num_runners < 0 || o.num_runners > 4096) // each runner owns an arena and caches
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "kiln_container_options.num_runners is %d; use 1 to 4096, or 0 "
                "for one per hardware thread",
                o.num_runners);
  if (o.threads_per_run < 0)
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "kiln_container_options.threads_per_run is %d; use 0 "
                "for all hardware threads",
                o.threads_per_run);

  const char *compiled = modelDevice(desc);
  bool cudaModel = std::strcmp(compiled, "cuda") == 0;
  if (!cudaModel && std::strcmp(compiled, "cpu") != 0)
    return fail(KILN_ERR_UNSUPPORTED,
                "model was compiled for device '%s'; this libkiln_rt supports cpu and cuda",
                compiled);
  // No device requested: the model's own (cuda:0 for a CUDA model).
  const char *dev = o.device ? o.device : compiled;
  if (int st = parseDevice(dev, spec)) return st;
  if (spec.cuda && !cudaModel)
    return fail(KILN_ERR_DEVICE,
                "device '%s' requested, but this model was compiled for cpu only; recompile "
                "with a cuda target or pass device \"cpu\"",
                dev);
  if (!spec.cuda && cudaModel)
    return fail(KILN_ERR_DEVICE,
                "device '%s' requested, but this model was compiled for cuda (%s) and has no "
                "CPU code; pass device \"cuda\" or \"cuda:N\", or recompile for cpu",
                dev, desc.cuda_arch ? desc.cuda_arch : "no arch recorded");
  if (cudaModel &&
      desc.struct_size < offsetof(kiln_model_desc_v1, cuda_arch) + sizeof(desc.cuda_arch))
    return fail(KILN_ERR_VERSION_MISMATCH,
                "model claims device cuda but its descriptor (%zu bytes) predates ABI 4; the "
                "model.so is corrupt or was not built by kiln",
                desc.struct_size);
  return KILN_OK;
}

void buildInfo(const kiln_model_desc_v1 &desc, const kiln_io_desc_v1 &io, TensorInfoArrays &a) {
  a.dimNames.assign(io.ndim > 0 ? io.ndim : 1, nullptr);
  a.dimMin.assign(io.ndim > 0 ? io.ndim : 1, 0);
  a.dimMax.assign(io.ndim > 0 ? io.ndim : 1, 0);
  for (int32_t d = 0; d < io.ndim; ++d) {
    if (io.dims[d] >= 0) {
      a.dimMin[d] = a.dimMax[d] = io.dims[d];
      continue;
    }
    int32_t s = io.dim_symbol ? io.dim_symbol[d] : -1;
    if (s >= 0 && s < desc.num_symbols) {
      a.dimNames[d] = desc.symbols[s].name;
      a.dimMin[d] = desc.symbols[s].min;
      a.dimMax[d] = desc.symbols[s].max;
      continue;
    }
    // A derived dim (e.g. 2*seq): its range is checked by bind_shapes, not known here.
    a.dimMin[d] = 0;
    a.dimMax[d] = INT64_MAX;
  }
}

} // namespace
} // namespace kiln::rt

extern "C" {

KILN_RT_API void kiln_rt_container_options_init(kiln_container_options *options) {
  if (!options) return;
  std::memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
}

KILN_RT_API uint32_t kiln_rt_abi_version(void) {
  return KILN_ABI_VERSION;
}
KILN_RT_API uint32_t kiln_rt_shim_version(void) {
  return KILN_SHIM_VERSION;
}

KILN_RT_API int kiln_rt_container_create_v1(const kiln_model_desc_v1 *desc,
                                            const kiln_container_options *options,
                                            kiln_container **out) {
  using namespace kiln::rt;
  if (!out) return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_container_create: out is NULL");
  *out = nullptr;
  if (int st = checkDesc(desc)) return st;
  if (int st = checkCpuFeatures(*desc)) return st;
  kiln_container_options opts;
  kiln_rt_container_options_init(&opts);
  DeviceSpec spec;
  if (options) {
    if (int st = checkOptions(*desc, *options, spec)) return st;
    opts = *options; // only v1 fields are read
  } else if (int st = checkOptions(*desc, opts, spec)) {
    return st;
  }

  try {
    auto c = std::make_unique<kiln_container>();
    c->desc = desc;
    c->threadsPerRun = opts.threads_per_run ? opts.threads_per_run : hardwareThreads();
    if (spec.cuda)
      if (int st = openCudaDevice(*desc, spec.ordinal, c->device)) return st;
    c->slots[0] = std::make_unique<ConstantSet>();
    if (int st = loadConstants(*desc, opts.weights_path, c->weightsFile, *c->slots[0])) return st;
    if (c->device) {
      if (int st = uploadConstants(*c->device, *desc, *c->slots[0])) return st;
    } else if (isReadOnlyFileMapping(c->slots[0]->base, c->slots[0]->size)) {
      // Packed copies replace their source constants' pages in RSS (WeightStore).
      c->slots[0]->derived->setFileBackedSource(c->slots[0]->base, c->slots[0]->size);
    }
    c->slots[0]->token = c->nextToken++;
    int32_t maxNdim = 1;
    for (int32_t i = 0; i < desc->num_constants; ++i)
      maxNdim = std::max(maxNdim, desc->constants[i].ndim);
    c->nullDimNames.assign(maxNdim, nullptr);

    c->inputInfo.resize(desc->num_inputs);
    for (int32_t i = 0; i < desc->num_inputs; ++i)
      buildInfo(*desc, desc->inputs[i], c->inputInfo[i]);
    c->outputInfo.resize(desc->num_outputs);
    for (int32_t i = 0; i < desc->num_outputs; ++i)
      buildInfo(*desc, desc->outputs[i], c->outputInfo[i]);

    // A GPU gains little from more concurrent runs than it has copy/compute overlap for.
    int n = opts.num_runners ? opts.num_runners : c->device ? kCudaRunners : hardwareThreads();
    c->runners.reserve(n);
    c->freeRunners.reserve(n);
    for (int i = 0; i < n; ++i) {
      auto r = std::make_unique<Runner>();
      r->scratch.init(*desc);
      if (c->device) {
        char err[512] = {};
        r->plugin = c->device->plugin;
        if (int st = r->plugin->runner_create(c->device->device, &r->cuda, err, sizeof err))
          return fail(st, "creating runner %d on cuda:%d: %s", i, spec.ordinal, err);
      }
      c->freeRunners.push_back(r.get());
      c->runners.push_back(std::move(r));
    }
    *out = c.release();
    clearError();
    return KILN_OK;
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "kiln_container_create: out of memory");
  } catch (const std::exception &e) {
    return fail(KILN_ERR_INTERNAL, "kiln_container_create: %s", e.what());
  }
}

KILN_RT_API int kiln_rt_container_destroy(kiln_container *container) {
  // Destroying NULL is a no-op, like free(). Runs must have finished.
  delete container;
  return KILN_OK;
}

} // extern "C"
