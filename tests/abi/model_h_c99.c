/* model.h, model_desc.h and shim.h alone, as pure C99 (see the abi.model_h_c99 test). */
#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <kiln/shim.h>

int kiln_model_h_compiles_as_c99(void);
int kiln_model_h_compiles_as_c99(void) {
  return KILN_ABI_VERSION + KILN_SHIM_VERSION;
}
