// libkiln_rt's side of a CUDA container: the plugin (loaded on first use), the device, the
// model's module, and synchronous copies and allocations through them. Knows no CUDA type.
#pragma once

#include "device_plugin.h"

#include <dlpack/dlpack.h>
#include <kiln/model_desc.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace kiln::rt {

/// A caller's device type as an integer. C callers may store any int in the enum field, and
/// reading a value outside DLDeviceType's range through the C++ enum type is undefined
/// behaviour (UBSan: "not a valid value for type 'DLDeviceType'"), so it is read as bytes.
inline int32_t deviceTypeOf(const DLDevice &d) {
  int32_t v;
  static_assert(sizeof(d.device_type) == sizeof v, "DLDeviceType is a 32-bit enum");
  __builtin_memcpy(&v, &d.device_type, sizeof v);
  return v;
}

struct ConstantSet;

// Where a container runs: the CPU, or the CUDA device with this ordinal.
struct DeviceSpec {
  bool cuda = false;
  int32_t ordinal = 0;
};

// Parses "cpu", "cpu:0", "cuda", "cuda:N"; fn names the caller in messages.
int parseDevice(const char *text, DeviceSpec &out);

// The CUDA plugin, loaded once per process (next to libkiln_rt, then the library search
// path). nullptr with a KILN_ERR_DEVICE message recorded when it is not there.
const kiln_device_plugin_v1 *cudaPlugin();

// The device state of one CUDA container.
struct DeviceState {
  const kiln_device_plugin_v1 *plugin = nullptr;
  void *device = nullptr; // plugin device handle (lives for the process)
  int32_t ordinal = 0;
  void *module = nullptr;
  void *const *functions = nullptr; // CUfunction per desc.cuda_kernel_names

  DeviceState() = default;
  DeviceState(const DeviceState &) = delete;
  DeviceState &operator=(const DeviceState &) = delete;
  ~DeviceState();

  // True for a kDLCUDA tensor on this device; kDLCPU tensors are "host".
  bool isMine(DLDevice d) const { return deviceTypeOf(d) == kDLCUDA && d.device_id == ordinal; }
  // Synchronous copy (see kiln_device_plugin_v1.copy_sync); records the error on failure.
  int copy(void *dst, bool dstOnDevice, const void *src, bool srcOnDevice, size_t bytes,
           const char *what) const;
  int alloc(size_t bytes, void **ptr, const char *what) const;
  void free(void *ptr) const;
};

// Opens the device and loads the model's kernels. Records the error on failure.
int openCudaDevice(const kiln_model_desc_v1 &desc, int32_t ordinal,
                   std::unique_ptr<DeviceState> &out);

// Replaces a host constant set (as loadConstants made it) by a device copy of it.
int uploadConstants(const DeviceState &dev, const kiln_model_desc_v1 &desc, ConstantSet &set);

// "cpu", "cuda:1", ... for messages.
struct DeviceName {
  char text[48];
};
DeviceName deviceName(DLDevice d);

// The model's device as declared in its descriptor ("cpu" when unset).
inline const char *modelDevice(const kiln_model_desc_v1 &d) {
  return d.device ? d.device : "cpu";
}

} // namespace kiln::rt
