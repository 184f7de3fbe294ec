// Refuses a model whose host code needs ISA extensions this CPU lacks (cpu_features.h).
#include "container.h"
#include "cpu_features.h"
#include "error.h"

#include <cstddef>
#include <string>

namespace kiln::rt {

int checkCpuFeatures(const kiln_model_desc_v1 &desc, cpu::FeatureMask have) {
  // Fields appended after ABI 4: absent in older models (nothing recorded, nothing checked).
  if (desc.struct_size < offsetof(kiln_model_desc_v1, cpu_features) + sizeof(desc.cpu_features))
    return KILN_OK;
  std::string missing = cpu::missingFeatures(desc.cpu_features, have);
  if (missing.empty()) return KILN_OK;
  return fail(KILN_ERR_DEVICE,
              "this model was compiled for CPU '%s' and needs %s, which this CPU (%s) lacks; "
              "recompile it with `kiln compile --cpu native` (this CPU) or a portable level "
              "such as --cpu %s",
              desc.cpu_isa ? desc.cpu_isa : "?", missing.c_str(), cpu::levelName(have),
              cpu::levelName(have));
}

} // namespace kiln::rt
