// The functions behind kiln_device_plugin_v1 (device_plugin.h); plugin_runner.cpp assembles
// the table.
#pragma once

#include "plugin.h"

#include "../device_plugin.h"

namespace kiln::rt::cuda {

const kiln_cuda_driver_v1 *driverTable();
int openDevice(int32_t ordinal, void **out, char *err, size_t errSize);
int loadModule(void *device, const void *image, size_t imageSize, int32_t numNames,
               const char *const *names, void **module, void *const **functions, char *err,
               size_t errSize);
void unloadModule(void *device, void *module);
int memAlloc(void *device, size_t bytes, void **ptr, char *err, size_t errSize);
void memFree(void *device, void *ptr);
int copySync(void *device, void *dst, int32_t dstOnDevice, const void *src, int32_t srcOnDevice,
             size_t bytes, char *err, size_t errSize);

} // namespace kiln::rt::cuda
