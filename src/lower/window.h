// Window geometry shared by convolutions and pooling: explicit pads or auto_pad,
// strides, dilations, and output extents (with ceil_mode), all symbolic.
#pragma once

#include "lower/lowerer.h"

namespace kiln::lower {

struct Window {
  std::vector<sym::Expr> padsBegin, padsEnd, out;
  std::vector<int64_t> strides, dilations;
};

/// Reads strides/dilations/pads/auto_pad from the node; `in` is N, C, spatial...
Window windowGeometry(OpCtx &c, const ir::Shape &in, const std::vector<sym::Expr> &kernel,
                      bool ceilMode);

} // namespace kiln::lower
