// Per-kernel profiling: kiln_set_profiler stores the host's callback in the container; each
// CPU run copies it into its runner, and the generated wrapper (which asks for the runner's
// profiler once per run through kiln_rt_run_profiler) calls begin/end around every kernel
// and shim call. Nothing here runs when profiling is off.
#include "container.h"
#include "error.h"
#include "runner.h"

#include <kiln/runtime.h>

#include <ctime>

using namespace kiln::rt;

namespace {

uint64_t monotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void siteBegin(void *user, const kiln_profile_site_v1 *) {
  static_cast<Runner *>(user)->profileStartNs = monotonicNs();
}

void siteEnd(void *user, const kiln_profile_site_v1 *site) {
  uint64_t end = monotonicNs();
  Runner *r = static_cast<Runner *>(user);
  kiln_profile_event ev{sizeof ev, site->name,        site->origin, site->kind,
                        site->id,  r->profileStartNs, end};
  r->profileFn(r->profileUser, &ev);
}

} // namespace

namespace kiln::rt {

void Runner::startProfiling(kiln_profile_fn fn, void *user) {
  profileFn = fn;
  profileUser = user;
  profiler = kiln_profiler_v1{sizeof(kiln_profiler_v1), this, siteBegin, siteEnd};
}

} // namespace kiln::rt

extern "C" {

KILN_RT_API const kiln_profiler_v1 *kiln_rt_run_profiler(void *runner) {
  Runner *r = static_cast<Runner *>(runner);
  return r && r->profileFn ? &r->profiler : nullptr;
}

KILN_RT_API int kiln_rt_set_profiler(kiln_container *c, kiln_profile_fn fn, void *user) {
  clearError();
  if (!c) return fail(KILN_ERR_INVALID_ARGUMENT, "kiln_set_profiler: container is NULL");
  if (c->device && fn)
    return fail(KILN_ERR_UNSUPPORTED,
                "kiln_set_profiler: per-kernel profiling covers CPU models only (CUDA launches "
                "are asynchronous; use Nsight Systems)");
  c->profileFn = fn;
  c->profileUser = fn ? user : nullptr;
  return KILN_OK;
}

} // extern "C"
