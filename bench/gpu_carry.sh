#!/usr/bin/env bash
# Prepare what bench/gpu_suite.py needs on a lent GPU machine (the device tool), which has
# torch and transformers in its image but none of TRL, PEFT's pinned version, datasets,
# bitsandbytes, gguf or llama-cpp-python, and no network: wheels for its Python 3.12 go to
# .whl/ and the default model's config + tokenizer (its 94 MB GGUF is too big to carry) to
# .gpu/smol/.  Both folders are git-ignored through .git/info/exclude.  Then, in one call:
#
#   run(carry=[".whl", ".gpu"], timeout_s=560, command=
#     "export PYTHONUNBUFFERED=1; python3 -m pip install -q --no-index --no-deps --no-compile
#      --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 3;
#      python3 bench/gpu_suite.py --shape-of .gpu/smol --budget 440 --out /tmp/gs | tee $OUT/suite.log;
#      cp /tmp/gs/gpu_suite.* $OUT/; tar czf $OUT/logs.tgz -C /tmp/gs logs")
#
# Seen on 2026-12-04 (nvidia-h200): the image's pyarrow 25, fsspec 2026.7, numpy 2.5 suit
# datasets 5.2; huggingface_hub 2.4 needs httpx2/httpcore2/truststore; the llama-cpp-python
# wheel built here (py3-none-linux_x86_64, ctypes) imports there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
PY=${PY:-.venv/bin/python}
for d in .whl .gpu; do
    grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >>.git/info/exclude
done
mkdir -p .whl .gpu/smol
ver() { "$PY" -m pip show "$1" 2>/dev/null | awk '/^Version/{print $2}' || true; }
pkgs=()
for p in transformers trl peft accelerate datasets dill multiprocess gguf tomli_w liger-kernel \
    huggingface_hub httpx2 httpcore2 truststore idna anyio hf-xet click h11 diskcache; do
    v=$(ver "$p")
    pkgs+=("$p${v:+==$v}")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp -d .whl --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 "${pkgs[@]}"
# bitsandbytes: only the CPU and CUDA 13 libraries (the image's torch is cu130); all of
# them together are 125 MB, over what a call may carry.
bnb=$(ver bitsandbytes)
tmp=$(mktemp -d)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_24_x86_64 -d "$tmp" "bitsandbytes==$bnb"
wheel=$(basename "$tmp"/bitsandbytes-*.whl)
mkdir "$tmp/x" && (cd "$tmp/x" && unzip -q "../$wheel" \
    && find bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*_cpu.so' ! -name '*_cuda13*.so' -delete \
    && rm -f "$root/.whl/$wheel" && zip -qr "$root/.whl/$wheel" .)
rm -rf "$tmp"
# llama-cpp-python has no wheel on PyPI: the one `make` built here (ctypes, any CPython).
cp ~/.cache/spark-tui/wheels/llama_cpp_python-*-py3-none-linux_x86_64.whl .whl/ 2>/dev/null \
    || echo "no llama-cpp-python wheel in ~/.cache/spark-tui/wheels: the export will use q8_0"
model=$("$PY" -c "from spark_tui.core.model.resolve import ensure_default_model as e; print(e())")
for f in config.json generation_config.json chat_template.jinja tokenizer.json tokenizer_config.json; do
    [ -f "$model/$f" ] && cp "$model/$f" .gpu/smol/
done
du -sh .whl .gpu
