#include "lower/window.h"

#include "lower/ops_common.h"

#include "support/error.h"

namespace kiln::lower {

/// Spatial geometry shared by Conv and pooling: pads (explicit or auto_pad),
/// strides, dilations and the output extents.
Window windowGeometry(OpCtx &c, const ir::Shape &in, const std::vector<sym::Expr> &kernel,
                      bool ceilMode) {
  size_t n = kernel.size();
  if (in.size() != n + 2)
    fail("{}: the input has rank {}, but a {}-D window needs rank {} (batch, channels and "
         "{} spatial dims)",
         c.node.describe(), in.size(), n, n + 2, n);
  Window w;
  w.strides = c.node.attrInts("strides", std::vector<int64_t>(n, 1));
  w.dilations = c.node.attrInts("dilations", std::vector<int64_t>(n, 1));
  std::vector<int64_t> pads = c.node.attrInts("pads", std::vector<int64_t>(2 * n, 0));
  if (w.strides.size() != n || w.dilations.size() != n || pads.size() != 2 * n)
    fail("{}: strides/dilations/pads do not match {} spatial dims", c.node.describe(), n);
  requirePositive(c, w.strides, "strides");
  requirePositive(c, w.dilations, "dilations");
  std::string autoPad = c.node.attrString("auto_pad", "NOTSET");
  sym::Context &ctx = c.ctx();
  for (size_t d = 0; d < n; ++d) {
    sym::Expr size = in[2 + d];
    sym::Expr eff = (kernel[d] - 1) * w.dilations[d] + 1;
    sym::Expr pb = ctx.constant(pads[d]), pe = ctx.constant(pads[n + d]);
    if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      sym::Expr outSize = sym::floorDiv(size + (w.strides[d] - 1), w.strides[d]);
      sym::Expr total = sym::max((outSize - 1) * w.strides[d] + eff - size, ctx.constant(0));
      sym::Expr small = sym::floorDiv(total, 2);
      pb = autoPad == "SAME_UPPER" ? small : total - small;
      pe = total - pb;
    } else if (autoPad == "VALID") {
      pb = pe = ctx.constant(0);
    } else if (autoPad != "NOTSET") {
      fail("{}: auto_pad '{}' is not valid", c.node.describe(), autoPad);
    }
    sym::Expr span = size + pb + pe - eff;
    sym::Expr o = ceilMode ? sym::floorDiv(span + (w.strides[d] - 1), w.strides[d]) + 1
                           : sym::floorDiv(span, w.strides[d]) + 1;
    if (ceilMode) // the last window must start inside the input or left padding
      o = sym::min(o, sym::floorDiv(size + pb - 1, w.strides[d]) + 1);
    w.padsBegin.push_back(pb);
    w.padsEnd.push_back(pe);
    w.out.push_back(o);
  }
  return w;
}

} // namespace kiln::lower
