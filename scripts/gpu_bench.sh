#!/usr/bin/env bash
# The prepared GPU benchmark (issue 8): one command, about 4-5 minutes on an H200.
#
#   scripts/gpu_bench.sh --prepare   # here, with network: wheels into .whl/, Qwen's vocabulary into .cache/
#   scripts/gpu_bench.sh             # on the GPU machine (offline): eager run with --profile, then compiled
#   scripts/gpu_bench.sh --variants  # a second call on the warm machine (~4-5 min): the knobs
#                                    # docs/benchmarks.md asks about (vision chunk 25, batch 50,
#                                    # varlen vision attention)
#
# The GPU machine has torch (CUDA) and Python 3.12 but not this project's other packages and no
# network, so --prepare downloads them as wheels to carry there (device tool: carry .whl and .cache).
# sqlite-utils lets the end-to-end row run the app's whole request (database write, thumbnails).
# Reports go to $OUT (or ./out): eager.json and compiled.json; the tables print to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --dest .whl \
    "transformers==5.24.0" "peft==0.21.2" "pymupdf==1.28.2" "pebble==5.2.3" regex \
    "sqlite-utils==4.2.1" click click-default-group tabulate python-dateutil tzdata sqlite-fts4 pluggy
  python3 -m reranker.checkpoints fetch-vocab
  ls .whl .cache
  exit 0
fi

out="${OUT:-out}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
fi
export RERANKER_QWEN_VOCAB="${RERANKER_QWEN_VOCAB:-$PWD/.cache/qwen.tiktoken}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ "${1:-}" = "--variants" ]; then
  python3 -m reranker.bench --tokenizer qwen --repeats 2 --vision-chunk 25 --json "$out/vision-chunk-25.json"
  python3 -m reranker.bench --tokenizer qwen --repeats 2 --pairs 50 --batch-size 50 --json "$out/batch-50.json"
  # torch's own varlen FlashAttention for the vision encoder (one kernel call per chunk of pages)
  python3 -m reranker.bench --tokenizer qwen --repeats 2 --varlen --json "$out/varlen.json"
  python3 -m reranker.bench --tokenizer qwen --repeats 2 --varlen --vision-chunk 25 --json "$out/varlen-chunk-25.json"
  exit 0
fi
python3 -m reranker.bench --tokenizer qwen --profile --json "$out/eager.json"
python3 -m reranker.bench --tokenizer qwen --compile --repeats 2 --json "$out/compiled.json"
