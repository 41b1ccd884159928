#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU, CuPy and PyTorch installed, and no internet
# (about 2-3 minutes on an H100):
#   1. the conformance suite on the cupy backend (and numpy), and the CuPy-specific tests
#      (GPU tests incl. torch CUDA tensors; the kernels' source on the host; NVRTC's code),
#      and benchmarks/_gpu_torch_cuda.py (torch's direct engine: cache, bit for bit, stream,
#      CUDA graph, per-call medians);
#   2. benchmarks/bench_gpu.py: every GPU ratio of issue 12 (forward/backward/ReLU/in place
#      vs copy and F.dropout in float32/float16/bfloat16, per-call cost, training step), then
#      benchmarks/bench_percall.py (issue 20's per-call rows, every framework side by side);
#   3. the epoch parts on cupy and `dropkit compare` wall time, numpy vs cupy;
#   4. the torch tests (-m torch) and the JAX tests with the GPU as the default device,
#      each capped at ${SECTION_LIMIT:-100} s (GPU time is scarce: a capped section says so).
# array-api-compat, if missing there, is taken from wheels in .whl/ (see README, "GPU").
# Usage: bash benchmarks/gpu_check.sh [OUTDIR]     (PYTHON=... to choose the interpreter)
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-python3}"
out="${1:-${OUT:-$(mktemp -d)}}"
mkdir -p "$out"
site="$(mktemp -d)"
export PYTHONUNBUFFERED=1
if ! "$py" -c "import array_api_compat" 2>/dev/null; then
  if ! ls "$repo"/.whl/array_api_compat-*.whl >/dev/null 2>&1; then
    echo "array-api-compat is missing and no wheel is in $repo/.whl/; see README" >&2
    exit 2
  fi
  "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$repo"/.whl/*.whl
fi
"$py" "$repo/benchmarks/register_workspace.py" "$site" || exit 2
export PYTHONPATH="$site:$repo:$repo/backends/numpy:$repo/backends/cupy:$repo/backends/torch:$repo/backends/strict:$repo/backends/jax:$repo/backends/dask:$repo/plugins/plots${PYTHONPATH:+:$PYTHONPATH}"
cd "$repo"
status=0
echo "== backends"; "$py" -m dropkit.experiment.cli backends --load | tee "$out/backends.txt"
echo "== conformance suite on cupy"
"$py" -m pytest -q -p no:cacheprovider --pyargs dropkit.testing --dropkit-backend cupy \
  --dropkit-backend numpy 2>&1 | tee "$out/suite.txt" || status=1
echo "== cupy-specific tests"
"$py" -m pytest -q -p no:cacheprovider -rs tests/backends/test_cupy_backend.py \
  tests/backends/test_cupy_kernels_on_host.py tests/backends/test_cupy_launchers_on_host.py 2>&1 \
  | tee "$out/cupy_tests.txt" || status=1
echo "== torch CUDA tensors on the direct engine (NVRTC + driver, no CuPy)"
"$py" benchmarks/_gpu_torch_cuda.py 2>&1 | tee "$out/torch_cuda.txt" || status=1
echo "== benchmark"
"$py" benchmarks/bench_gpu.py 2>&1 | tee "$out/bench_gpu.txt" || status=1
echo "== per-call cost beside F.dropout / x * 2 (NumPy, torch CPU, CuPy, torch CUDA)"
"$py" benchmarks/bench_percall.py --rounds 9 2>&1 | tee "$out/bench_percall.txt" || status=1
echo "== epoch parts on cupy; dropkit compare, numpy vs cupy wall time (30 epochs each)"
"$py" benchmarks/bench_compare.py --backend cupy --rounds 3 --epochs 6 --wall numpy,cupy \
  --wall-epochs 30 2>&1 | tee "$out/compare.txt" || status=1
limit="${SECTION_LIMIT:-100}"
echo "== torch tests on this machine's torch (CUDA present), at most ${limit} s"
timeout "$limit" "$py" -m pytest -q -p no:cacheprovider -rs -m torch tests 2>&1 \
  | tee "$out/torch_tests.txt" || status=1
echo "== JAX tests with the GPU as JAX's default device, at most ${limit} s"
timeout "$limit" "$py" -m pytest -q -p no:cacheprovider -rs tests/backends/test_jax_modules.py \
  tests/backends/test_jax_transforms.py tests/backends/test_family_jax.py \
  tests/backends/test_jax_example.py 2>&1 | tee "$out/jax_tests.txt" || status=1
exit $status
