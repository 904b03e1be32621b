#!/usr/bin/env bash
# The GPU checks in one short call, for a session lent a GPU machine (the device tool):
#     run(command="bash benchmarks/gpu_check.sh", timeout_s=540)
# That machine has torch, numpy, click, pluggy and pytest but cannot fetch packages, so
# optbench runs from the source tree (PYTHONPATH=src) instead of being installed.
# Everything lands in $OUT: gpu.txt (the device), pytest.txt, run.txt, gpu.json + gpu.log
# (benchmarks/gpu.py: the HBM bound at 10^8 samples, CUDA graphs on the tutorial).
set -uo pipefail
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [ "${1:-}" != "batch" ]; then  # `gpu_check.sh batch`: the batched fits alone
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    | tee -a "$out/gpu.txt"
python3 -m pip list 2>/dev/null | grep -i -E "^(torch|triton|numpy|pluggy|click|pytest) " \
    | tee -a "$out/gpu.txt"
timeout 300 python3 benchmarks/gpu.py --json "$out/gpu.json" 2>&1 | tee "$out/gpu.log" \
    | grep -v -i warn
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 \
    | tail -25 | tee "$out/pytest.txt"
timeout 30 python3 -m optbench run --backend torch --device cuda --dtype float32 2>&1 \
    | tee "$out/run.txt"
fi
# Batched fits (issue 16): 10^6 Gaussian-peak fits in float32 on torch CUDA, fits/s end to
# end, peak memory against the data, agreement with a float64 CPU run on 1,000 fits.
# On a machine without a GPU: FITS=200 DEVICE=cpu bash benchmarks/gpu_check.sh batch
# Alone in one call: run(command="bash benchmarks/gpu_check.sh batch", timeout_s=300).
if [ "${1:-}" = "batch" ] || [ -z "${1:-}" ]; then
    timeout 240 python3 benchmarks/batch_fit.py --device "${DEVICE:-cuda}" --dtype float32 \
        --fits "${FITS:-1000000}" --backends torch --no-scipy --compare 1000 --tol 1e-6 \
        --chunk "${CHUNK:-131072}" --scaling "" --json "$out/batch_fit.json" 2>&1 \
        | tee "$out/batch_fit.txt"
fi
