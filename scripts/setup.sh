#!/usr/bin/env bash
# Creates .venv and installs spark-tui with everything it needs.  Called by `make`
# only when pyproject.toml or this script changed (see the stamp in the Makefile).
#
# torch is handled deliberately:
#   * If the interpreter running make can already import torch (NVIDIA's NGC
#     container on a DGX Spark), the venv is created with --system-site-packages
#     and that torch is pinned with a constraint so pip can never replace it.
#   * Otherwise TORCH_SPEC is installed (default torch==2.13.0: on the build
#     machines a CPU wheel of that version lies on disk, while a plain `torch`
#     would pull several GB of CUDA packages).  On a GPU box without torch, set
#     TORCH_SPEC=torch (and TORCH_INDEX_URL if you want a specific CUDA build).
#
# llama-cpp-python has no prebuilt wheel: it compiles llama.cpp.  Its source
# distribution is downloaded once into $WHEEL_CACHE and kept there: the wheel is
# built from it (once, then reused), and the tests take llama.cpp's own GGUF
# converter (vendor/llama.cpp/convert_hf_to_gguf.py + gguf-py) from it as the
# reference for our exporter.  On x86-64 the wheel is built portable
# (-DGGML_NATIVE=OFF): native builds crash or give wrong logits on CPUs with AMX.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-}"
LLAMA_CPP_VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
WHEEL_CACHE="${WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spark-tui/wheels}"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "spark-tui needs Python >= 3.10 (found: $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    if "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
        say "torch is already installed for $PYTHON: reusing it (venv with --system-site-packages)"
        "$PYTHON" -m venv --system-site-packages "$VENV"
    else
        say "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

CONSTRAINTS="$VENV/spark-tui-constraints.txt"
if "$VENV/bin/python" -c 'import torch' >/dev/null 2>&1; then
    TORCH_VERSION="$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
    say "using the installed torch $TORCH_VERSION (never replaced)"
else
    say "installing $TORCH_SPEC"
    if [ -n "$TORCH_INDEX_URL" ]; then
        "${PIP[@]}" install "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
    else
        "${PIP[@]}" install "$TORCH_SPEC"
    fi
    TORCH_VERSION="$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
fi
# Pin whatever torch we have so no dependency can upgrade or replace it.
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"

mkdir -p "$WHEEL_CACHE"
find_sdist() {  # prints the cached sdist's path, or nothing
    local f
    for f in "$WHEEL_CACHE"/llama[-_]cpp[-_]python-"$LLAMA_CPP_VERSION".tar.gz; do
        if [ -f "$f" ]; then
            echo "$f"
            return 0
        fi
    done
}
HAVE_WHEEL=0
if ls "$WHEEL_CACHE"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl >/dev/null 2>&1; then
    HAVE_WHEEL=1
fi
if [ -z "$(find_sdist)" ]; then
    say "downloading the llama-cpp-python $LLAMA_CPP_VERSION source once (kept in $WHEEL_CACHE)"
    if ! "${PIP[@]}" download "llama-cpp-python==$LLAMA_CPP_VERSION" \
        --no-deps --no-binary :all: -d "$WHEEL_CACHE"; then
        if [ "$HAVE_WHEEL" = 0 ]; then
            echo "cannot download the llama-cpp-python $LLAMA_CPP_VERSION source" >&2
            exit 1
        fi
        say "warning: no llama-cpp-python source; the llama.cpp converter tests will skip"
    fi
fi
SDIST="$(find_sdist)"
if [ "$HAVE_WHEEL" = 0 ]; then
    say "building llama-cpp-python $LLAMA_CPP_VERSION once (compiles llama.cpp: a few minutes)"
    CMAKE_FLAGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
    if [ "$(uname -m)" = "x86_64" ]; then
        CMAKE_FLAGS="-DGGML_NATIVE=OFF $CMAKE_FLAGS"
    fi
    CMAKE_ARGS="$CMAKE_FLAGS ${CMAKE_ARGS:-}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "${PIP[@]}" wheel --no-deps "$SDIST" -w "$WHEEL_CACHE"
else
    say "reusing the cached llama-cpp-python wheel from $WHEEL_CACHE"
fi

say "installing spark-tui and its dependencies"
"${PIP[@]}" install -c "$CONSTRAINTS" --find-links "$WHEEL_CACHE" \
    "llama-cpp-python==$LLAMA_CPP_VERSION" -e ".[test]"
say "done"
