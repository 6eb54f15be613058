#!/usr/bin/env bash
# The prepared GPU benchmark (issue 8): one command, about 4-5 minutes on an H200.
#
#   scripts/gpu_bench.sh --prepare   # here, with network: .whl/ emptied, then refilled with wheels pinned
#                                    # to .venv's versions; Qwen's vocabulary into .cache/
#   scripts/gpu_bench.sh             # on the GPU machine (offline): eager run with --profile, then compiled
#   scripts/gpu_bench.sh --variants  # a second call on the warm machine: four more runs, the knobs
#                                    # docs/benchmarks.md asks about (vision chunk 25; batch 50;
#                                    # varlen vision attention; varlen with vision chunk 25)
#   scripts/gpu_bench.sh --all       # one call for a short lease: eager (stops here if it fails), a
#                                    # float32 agreement check, varlen, compiled, vision chunk 25,
#                                    # batch 50, each under what is left of BUDGET_S (default 500 s);
#                                    # one log, all.log, and a JSON per run in $OUT
#   scripts/gpu_bench.sh --app       # likewise, the app's side: eager; scripts/gpu_app_check.py --checks
#                                    # compile (torch.compile with the app's warm-up at load, over uploads
#                                    # of different sizes); compiled; then scripts/gpu_sdpa_kernels.py
#                                    # (which attention kernel SDPA picks, each one's speed)
#   scripts/gpu_bench.sh --trace     # likewise, where the time goes: scripts/gpu_kernel_trace.py --compile
#                                    # (one cold batch's kernels by kind, eager and compiled; its gzipped
#                                    # traces in $OUT), then eager with --profile, then compiled
#   scripts/gpu_bench.sh --prepare-baseline REV   # here: .baseline/ holds commit REV's tree (carry it too)
#   scripts/gpu_bench.sh --compare   # on the GPU: tests/test_resample.py and test_patch_embedding.py there, then a change against .baseline
#                                    # on the same machine, alternating this tree and .baseline: eager, eager,
#                                    # compiled, compiled; then
#                                    # gpu_kernel_trace.py --compile on this tree, if BUDGET_S leaves time
#   scripts/gpu_bench.sh --check     # only the import check that the runs above start with
#
# The GPU machine has no network. Its image (this workplace's CUDA one) has torch, numpy, pillow,
# jinja2, scipy, huggingface_hub, tokenizers, safetensors, accelerate, typer, pyyaml, tqdm, but an
# older transformers and none of pymupdf, pebble, peft's pinned version or sqlite-utils, so
# --prepare downloads those as wheels to carry there (device tool: carry .whl and .cache; with the
# repo, at most 64 MiB a call; --prepare prints the total). sqlite-utils lets the end-to-end row
# run the app's whole request (database write, thumbnails). Each run first checks that every
# module the benchmark imports is there, at the versions requirements.txt asks for, and stops with
# the list of what is missing if not (PYTHON=... picks the interpreter; default python3).
# Reports go to $OUT (or ./out): eager.json and compiled.json; the tables print to stdout.
set -euo pipefail
PY="${PYTHON:-python3}"
# A relative path is the caller's (resolved before the cd below), and works from .baseline too.
case "$PY" in */*) [ "${PY#/}" != "$PY" ] || PY="$PWD/$PY" ;; esac
cd "$(dirname "$0")/.."

# What --prepare carries: the runtime packages the benchmark imports that the image lacks (or has
# at another version), and their own needs that the image may lack. One wheel each, pinned below.
# pytest (and its needs) runs tests/test_resample.py and tests/test_patch_embedding.py on the GPU before --compare's runs.
CARRY=(transformers peft pymupdf pebble regex sqlite-utils click click-default-group tabulate
       python-dateutil tzdata sqlite-fts4 pluggy pytest iniconfig pygments)

if [ "${1:-}" = "--prepare-baseline" ]; then
  revision="${2:?usage: scripts/gpu_bench.sh --prepare-baseline REV}"
  git rev-parse --verify --quiet "$revision^{commit}" > /dev/null || { echo "gpu_bench.sh: $revision is not a commit here" >&2; exit 1; }
  rm -rf .baseline
  mkdir .baseline
  git archive "$revision" | tar -x -C .baseline
  echo "$(git rev-parse --short "$revision")" > .baseline/REVISION
  echo ".baseline: $(cat .baseline/REVISION), $(du -sh .baseline | cut -f1); carry .baseline with .whl and .cache"
  exit 0
fi

if [ "${1:-}" = "--prepare" ]; then
  here=.venv/bin/python
  [ -x "$here" ] || { echo "gpu_bench.sh --prepare: no .venv here (python -m venv .venv; .venv/bin/pip install -r requirements.txt)" >&2; exit 1; }
  freeze="$("$here" -m pip freeze)"
  pins=()
  for name in "${CARRY[@]}"; do
    pattern="^$(printf '%s' "$name" | sed 's/[-_.]/[-_.]/g')=="
    pin="$(printf '%s\n' "$freeze" | grep -i -E "$pattern" || true)"
    if [ -z "$pin" ]; then
      echo "gpu_bench.sh --prepare: $name is not installed in .venv, so there is no version to pin" >&2
      exit 1
    fi
    pins+=("$pin")
  done
  rm -rf .whl  # never add to an old set: two versions of one package stop the install there
  mkdir .whl
  "$here" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --dest .whl "${pins[@]}"
  twice="$(ls .whl | sed 's/-.*//' | tr 'A-Z.' 'a-z_' | sort | uniq -d)"
  [ -z "$twice" ] || { echo "gpu_bench.sh --prepare: more than one wheel of: $twice" >&2; exit 1; }
  "$here" -m reranker.checkpoints fetch-vocab
  ls -l .whl .cache
  mib() { echo $(( ($1 + 1048575) / 1048576 )); }
  carried=$(du -cb .whl .cache | tail -1 | cut -f1)
  tree=$(git ls-files -z -c -o --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
  total=$((carried + tree))
  echo "carried: .whl and .cache $(mib "$carried") MiB; with the working tree ($(mib "$tree") MiB) $(mib "$total") MiB of the 64 MiB a device call takes"
  if [ "$total" -gt $((64 * 1048576)) ]; then
    echo "gpu_bench.sh --prepare: over 64 MiB: the device call would refuse it" >&2
    exit 1
  fi
  exit 0
fi

check_imports() {
  "$PY" - <<'PYTHON'
"""Everything the benchmark imports, at the versions it needs: one list of problems, no traceback."""
import importlib
import importlib.metadata as metadata
import os
import sys
from pathlib import Path

problems = []
# The project's modules a run loads (they import pebble, pymupdf, sqlite_utils, scipy, PIL at
# their top) and what they import only when used.
for module in ("torch", "numpy", "PIL", "jinja2.sandbox", "huggingface_hub", "peft", "pymupdf", "pebble", "sqlite_utils",
               "transformers.models.qwen3_vl.modeling_qwen3_vl", "reranker.bench", "reranker.checkpoints",
               "reranker.loading", "reranker.scoring", "reranker.attention", "reranker.prefix_cache", "reranker.processor",
               "reranker.ranking", "reranker.documents", "reranker.rendering", "reranker.store", "reranker.thumbnails"):
    try:
        importlib.import_module(module)
    except Exception as error:  # ImportError, or a module failing on an incompatible version of another
        problems.append(f"import {module}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
try:
    from packaging.requirements import Requirement
except ImportError:
    Requirement = None
    problems.append("import packaging: not installed (needed to check versions)")
if Requirement is not None:
    def check(requirement, wanted_by):
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            return
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement.name} is not installed ({wanted_by} needs {requirement})")
            return
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name} {version} is here, {wanted_by} needs {requirement}")

    # requirements.txt, less what the benchmark does not use (the app's UI, eval, exports) and torch, which
    # is the machine's own CUDA build
    for line in Path("requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            if requirement.name not in ("torch", "gradio", "datasets", "scipy", "spaces", "pandas", "pyarrow"):
                check(requirement, "requirements.txt")
    for name in ("transformers", "peft", "sqlite-utils", "python-dateutil"):  # and what those need
        try:
            needs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in needs:
            check(Requirement(text), name)
vocabulary = os.environ.get("RERANKER_QWEN_VOCAB")
if vocabulary and not Path(vocabulary).is_file():
    problems.append(f"Qwen's vocabulary {vocabulary} is missing (carry .cache)")
if problems:
    print("gpu_bench.sh: this machine cannot run the benchmark:", file=sys.stderr)
    for problem in dict.fromkeys(problems):
        print(f"  {problem}", file=sys.stderr)
    print("Run scripts/gpu_bench.sh --prepare where there is network, and carry .whl and .cache.", file=sys.stderr)
    sys.exit(1)
print("gpu_bench.sh: every module the benchmark imports is here")
PYTHON
}

if compgen -G ".whl/*.whl" > /dev/null && [ "${1:-}" != "--check" ]; then
  "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
fi
export RERANKER_QWEN_VOCAB="${RERANKER_QWEN_VOCAB:-$PWD/.cache/qwen.tiktoken}"
check_imports
if [ "${1:-}" = "--check" ]; then
  exit 0
fi
# Absolute: --compare runs the baseline from .baseline/, where a relative path would put its reports.
out="$(mkdir -p "${OUT:-out}" && cd "${OUT:-out}" && pwd)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ "${1:-}" = "--all" ] || [ "${1:-}" = "--app" ] || [ "${1:-}" = "--trace" ] || [ "${1:-}" = "--compare" ]; then
  set -o pipefail
  deadline=$(( $(date +%s) + ${BUDGET_S:-500} ))
  step() {  # step NAME COMMAND...: one run, cut off at the deadline; skipped when under 45 s are left
    local name="$1" left
    shift
    left=$(( deadline - $(date +%s) ))
    if [ "$left" -lt 45 ]; then echo "== $name: skipped, $left s left" | tee -a "$out/all.log"; return 0; fi
    echo "== $name ($left s left): $*" | tee -a "$out/all.log"
    timeout --signal=INT "$left" "$@" --json "$out/$name.json" 2>&1 | tee -a "$out/all.log"
  }
  bench=("$PY" -m reranker.bench --tokenizer qwen)
  if [ "${1:-}" = "--compare" ]; then
    [ -f .baseline/REVISION ] || { echo "gpu_bench.sh --compare: no .baseline (--prepare-baseline REV here, and carry it)" >&2; exit 1; }
    # First, that the GPU resizes pages to Pillow's very pixels and embeds patches as the Conv3d
    # does (the runs below rely on both).
    echo "== tests/test_resample.py and tests/test_patch_embedding.py on the GPU" | tee -a "$out/all.log"
    timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_resample.py tests/test_patch_embedding.py -k cuda 2>&1 \
      | tail -15 | tee -a "$out/all.log" || true
    echo "== this tree against .baseline (commit $(cat .baseline/REVISION)), alternating" | tee -a "$out/all.log"
    site="${PYTHONPATH:-}"  # /tmp/site:$PWD when wheels were installed: keep the wheels, not this tree
    baseline=(env -C .baseline "PYTHONPATH=${site%%:*}:$PWD/.baseline" "$PY" -m reranker.bench --tokenizer qwen)
    step eager "${bench[@]}" || true
    step baseline-eager "${baseline[@]}" || true
    step compiled "${bench[@]}" --compile --repeats 2 || true
    step baseline-compiled "${baseline[@]}" --compile --repeats 2 || true
    step trace "$PY" scripts/gpu_kernel_trace.py --compile --out "$out" || true
    exit 0
  fi
  if [ "${1:-}" = "--trace" ]; then
    step trace "$PY" scripts/gpu_kernel_trace.py --compile --out "$out" || true
    step eager "${bench[@]}" --profile || true
    step compiled "${bench[@]}" --compile --repeats 2 || true
    exit 0
  fi
  if [ "${1:-}" = "--app" ]; then
    step eager "${bench[@]}" --profile || exit 1
    step app-check "$PY" scripts/gpu_app_check.py --checks compile || true
    step compiled "${bench[@]}" --compile --repeats 2 || true
    "$PY" scripts/gpu_sdpa_kernels.py 2>&1 | tee "$out/sdpa-kernels.log"
    exit 0
  fi
  step eager "${bench[@]}" --profile || exit 1
  step float32 "${bench[@]}" --dtype float32 --pairs 8 --batch-size 8 --reference-pairs 8 --repeats 1 || true
  step varlen "${bench[@]}" --repeats 2 --varlen || true
  step compiled "${bench[@]}" --compile --repeats 2 || true
  step vision-chunk-25 "${bench[@]}" --repeats 2 --vision-chunk 25 || true
  step batch-50 "${bench[@]}" --repeats 2 --pairs 50 --batch-size 50 || true
  exit 0
fi
if [ "${1:-}" = "--variants" ]; then
  "$PY" -m reranker.bench --tokenizer qwen --repeats 2 --vision-chunk 25 --json "$out/vision-chunk-25.json"
  "$PY" -m reranker.bench --tokenizer qwen --repeats 2 --pairs 50 --batch-size 50 --json "$out/batch-50.json"
  # torch's own varlen FlashAttention for the vision encoder (one kernel call per chunk of pages)
  "$PY" -m reranker.bench --tokenizer qwen --repeats 2 --varlen --json "$out/varlen.json"
  "$PY" -m reranker.bench --tokenizer qwen --repeats 2 --varlen --vision-chunk 25 --json "$out/varlen-chunk-25.json"
  exit 0
fi
"$PY" -m reranker.bench --tokenizer qwen --profile --json "$out/eager.json"
"$PY" -m reranker.bench --tokenizer qwen --compile --repeats 2 --json "$out/compiled.json"
