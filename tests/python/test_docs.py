"""docs/python.md's first example, run as written on the small CNN (saved as model.onnx in a
scratch directory), and its output checked against PyTorch."""
import os
import re
import shutil

import numpy as np

from conftest import ATOL, RTOL, model_path, torch_reference

DOC = os.path.join(os.environ.get("KILN_SOURCE_DIR", os.path.join(os.path.dirname(__file__),
                                                                  "..", "..")),
                   "docs", "python.md")


def first_python_block():
    with open(DOC) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert blocks, "docs/python.md has no python example"
    return blocks[0]


def test_five_line_example(tmp_path, monkeypatch, capsys, cnn_torch):
    code = first_python_block()
    assert len(code.strip().splitlines()) == 5, code
    shutil.copy(model_path("cnn"), tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    scope = {"__name__": "__doc_example__"}
    exec(compile(code, DOC, "exec"), scope)
    np.testing.assert_allclose(scope["y"], torch_reference(cnn_torch, scope["x"]), rtol=RTOL,
                               atol=ATOL)
    assert "(8, 10)" in capsys.readouterr().out
