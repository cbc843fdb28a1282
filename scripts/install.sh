#!/usr/bin/env bash
# Creates the virtual environment and installs otdiv with its test extras.
# torch: a torch already in the environment that satisfies the range is kept (GPU users
# install their CUDA build first). Otherwise, on a machine without an NVIDIA GPU the CPU
# build is installed before anything else, so that no multi-GB CUDA build is pulled.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_CPU_SPEC=${TORCH_CPU_SPEC:-torch==2.13.0}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip >/dev/null

has_torch=$("$PY" - <<'PYEOF'
try:
    import torch
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    print("yes" if (2, 1) <= (major, minor) < (3, 0) else "no")
except Exception:
    print("no")
PYEOF
)
if [ "$has_torch" = "yes" ]; then
    echo "install: keeping the torch already in $VENV"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "install: NVIDIA GPU found; torch comes with its default (CUDA) build"
else
    echo "install: no GPU; installing the CPU build ($TORCH_CPU_SPEC)"
    # TORCH_INDEX_URL may point at a CPU wheel index on machines that do not carry one.
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        "$PY" -m pip install -q "$TORCH_CPU_SPEC" --index-url "$TORCH_INDEX_URL"
    else
        "$PY" -m pip install -q "$TORCH_CPU_SPEC"
    fi
fi
"$PY" -m pip install -q -e '.[test]'
