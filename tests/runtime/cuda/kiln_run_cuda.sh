#!/bin/sh
# `kiln run` on the fake CUDA model through the mock driver: .npy in, copied to the "GPU",
# run, copied back, checked. Usage: kiln_run_cuda.sh KILN MODEL_SO MOCK_SO WORK_DIR
set -eu
kiln=$1 model=$2 mock=$3 work=$4
mkdir -p "$work"
/usr/bin/python3 -c "import numpy as np; np.save('$work/x.npy', (np.arange(3*256) % 7 - 3).astype(np.float32).reshape(3, 256))"
KILN_CUDA_DRIVER_MOCK=$mock "$kiln" run "$model" --input "x=$work/x.npy" --output-dir "$work/out" --bench 5
/usr/bin/python3 -c "
import numpy as np
x = np.load('$work/x.npy'); y = np.load('$work/out/y.npy')
err = abs(y - (2 * x + np.arange(256) * 0.5)).max()
print('max error', err); assert y.shape == (3, 256) and err == 0"
