/* Test hooks of the mock CUDA driver (mock_driver.cpp). The plugin loads the mock instead of
 * libcuda.so.1 when KILN_CUDA_DRIVER_MOCK names it; a test dlopens the same file to reach
 * these. Device memory is host memory, and the fake model's kernel runs on the host at
 * launch; events complete at once, or only when the test says so (auto_complete off). */
#ifndef KILN_MOCK_DRIVER_H
#define KILN_MOCK_DRIVER_H

#include <stdint.h>

#define KILN_MOCK_MAX_DEVICES 4

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_mock_stats {
  int64_t allocs, frees, live_allocs;
  int64_t syncs; /* cuStreamSynchronize + cuEventSynchronize */
  int64_t launches, stream_waits, event_records, event_queries;
  int64_t ctx_pushes, ctx_pops, module_loads, module_unloads;
  int64_t allocs_on[KILN_MOCK_MAX_DEVICES]; /* allocations made in device N's context */
} kiln_mock_stats;

typedef struct kiln_mock_launch {
  char name[64];
  uint32_t grid[3], block[3], shared_bytes;
  void *stream;
  uint64_t args[4]; /* the first four 8-byte arguments */
  int device;       /* the device of the context current at the launch */
} kiln_mock_launch;

typedef void (*kiln_mock_counters_fn)(kiln_mock_stats *out);
typedef int (*kiln_mock_last_launch_fn)(kiln_mock_launch *out); /* 0 when none yet */
typedef void (*kiln_mock_set_auto_complete_fn)(int on);
typedef void (*kiln_mock_set_device_count_fn)(int n); /* 1 by default */
typedef void (*kiln_mock_complete_events_fn)(void);
typedef int (*kiln_mock_pending_events_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
