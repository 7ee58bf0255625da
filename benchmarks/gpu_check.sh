#!/usr/bin/env bash
# One prepared device check (a lent GPU machine; its python3 has torch, numpy and pytest, no solvers):
# the trainer's tests (CUDA ones included: per-row losses and shared heads too), the throughput benchmark on 2 pinned CPU cores (the
# benchmark's setting) with 1,024 models on the GPU, user modules batched with torch.func on the GPU,
# and the estimate pipeline on CUDA against the CPU.
#     bash benchmarks/gpu_check.sh            (writes logs under $OUT when set)
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp}
# the project is not installed there: make models/ importable under its installed name
mkdir -p /tmp/mtlp_path && ln -sfn "$PWD/models" /tmp/mtlp_path/planner_models
export PYTHONPATH="/tmp/mtlp_path:$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "== machine"; nproc; (gcc --version || cc --version) 2>&1 | head -1; nvidia-smi -L 2>&1 | head -2
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
echo "== tests"
python3 -m pytest -q -p no:cacheprovider tests/training/test_models_train.py tests/training/test_models_native.py \
    tests/training/test_user_model.py tests/training/test_gradient.py tests/training/test_row_losses.py 2>&1 | tail -4
python3 -m pytest -q -p no:cacheprovider tests/training/test_heads.py -k "not cli" 2>&1 | tail -2
echo "== throughput, 2 pinned cores, 1 thread, GPU 1,024 models"
taskset -c 0,1 python3 benchmarks/train_throughput.py --threads 1 --torch-path --gpu-models 1024 2>&1 | tee "$OUT/throughput.txt" | tail -9
echo "== user modules: batched torch.func against the loop, on the GPU"
python3 benchmarks/user_model_throughput.py --device cuda 2>&1 | tee "$OUT/user_model.txt" | tail -6
echo "== estimate pipeline, CUDA vs CPU"
python3 benchmarks/gpu_estimate.py 2>&1 | tail -5
