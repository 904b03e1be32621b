#!/usr/bin/env bash
# The GPU checks in one short call, for a session lent a GPU machine (the device tool):
#     run(command="bash benchmarks/gpu_check.sh", timeout_s=300)
# That machine has torch, numpy, click, pluggy and pytest but cannot fetch packages, so
# optbench runs from the source tree (PYTHONPATH=src) instead of being installed.
set -uo pipefail
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/pytest.txt"
python3 -m optbench run --backend torch --device cuda --dtype float32 2>&1 | tee "$out/run.txt"
