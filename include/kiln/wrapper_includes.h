// What a generated model wrapper (wrapper.cpp) includes, as one header it includes first, so
// kiln's builder can precompile it once per flag set (aot/builder.cpp): the C++ standard
// headers here cost more to parse than a small model's whole wrapper.
#pragma once

// Shims newer than level 3 are weak references: on an older runtime they resolve to NULL,
// dlopen succeeds and container creation refuses the model by its shim level (shim.h).
#define KILN_SHIM_WEAK_FROM_LEVEL 4
#include "kiln/model.h"
#include "kiln/model_desc.h"
#include "kiln/prelude.h"
#include "kiln/runtime.h"
#include "kiln/shim.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
