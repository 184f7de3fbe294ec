#!/usr/bin/env python3
"""ctest fixture: exports the test models and compiles them once with kiln.compile, so the
test files (run in parallel) find them in the compile cache ($KILN_CACHE_DIR)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kiln  # noqa: E402
import reference_models  # noqa: E402

work = os.environ["KILN_TEST_WORK"]
os.makedirs(work, exist_ok=True)
reference_models.export_all(work)
for name in ("cnn", "two_in_out"):
    model = kiln.compile(os.path.join(work, f"{name}.onnx"))
    print(f"{name}: {model}")
