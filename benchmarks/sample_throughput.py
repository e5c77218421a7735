"""Generated tokens/s of the `sample` stage's engine (vLLM) vs plain transformers `generate`.

    .venv/bin/python benchmarks/sample_throughput.py [--model DIR] [--problems 200] [--n 8]

Same model, same prompts, same n and max_tokens, temperature 1.0, measured side by side in one
run. Without --model a tiny model is built (untrained weights generate to max_tokens, which is a
fair fixed-length workload for both). Prints the ratio; writes benchmarks/results/sample_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def build_model(out: Path) -> str:
    from tasks.bootstrap import build_tiny_model, train_tokenizer
    from tasks.config import load_config
    from tasks import world
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    rows = world.bootstrap_corpus(2000, seed=0, ops=["add", "sub", "mul"], max_digits=3, zh_fraction=0.5, sloppy_fraction=0.6)
    train_tokenizer([r["question"] for r in rows] + [r["solution"] for r in rows], 640, out / "tok")
    build_tiny_model(cfg.bootstrap.tiny, cfg.run.seed, out / "tok", out / "model")
    return str(out / "model")


def hf_generate(model_dir: str, prompts: list[str], n: int, max_tokens: int, batch: int) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    total = 0
    with torch.inference_mode():
        for i in range(0, len(prompts), batch):
            enc = tok(prompts[i:i + batch], return_tensors="pt", padding=True)
            out = model.generate(**enc, do_sample=True, temperature=1.0, max_new_tokens=max_tokens,
                                 num_return_sequences=n, pad_token_id=tok.pad_token_id)
            new = out[:, enc.input_ids.shape[1]:]
            total += int(((new != tok.pad_token_id) & (new != tok.eos_token_id)).sum()) + int((new == tok.eos_token_id).any(1).sum())
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--hf-batch", type=int, default=32, help="prompts per transformers generate call")
    args = ap.parse_args()

    from tasks import world
    from tasks.config import EngineConfig
    from tasks.engine import generate, get_engine

    tmp = tempfile.TemporaryDirectory()
    model = args.model or build_model(Path(tmp.name))
    prompts = [p["question"] + "\n" for p in world.make_problems(args.problems, seed=11, ops=["add", "sub", "mul"], max_digits=3, zh_fraction=0.5)]

    get_engine(model, EngineConfig())  # start-up is reported apart from throughput
    t = time.perf_counter()
    outs = generate(model, prompts, n=args.n, temperature=1.0, top_p=1.0, max_tokens=args.max_tokens,
                    seed=0, stop=None, engine_cfg=EngineConfig())
    vllm_s = time.perf_counter() - t
    vllm_tokens = sum(c["n_tokens"] for o in outs for c in o)

    t = time.perf_counter()
    hf_tokens = hf_generate(model, prompts, args.n, args.max_tokens, args.hf_batch)
    hf_s = time.perf_counter() - t

    result = {
        "workload": {"problems": args.problems, "n": args.n, "max_tokens": args.max_tokens, "model": model if args.model else "tiny (untrained)"},
        "vllm": {"tokens": vllm_tokens, "seconds": round(vllm_s, 2), "tokens_per_s": round(vllm_tokens / vllm_s, 1)},
        "transformers": {"tokens": hf_tokens, "seconds": round(hf_s, 2), "tokens_per_s": round(hf_tokens / hf_s, 1), "batch": args.hf_batch},
    }
    result["ratio"] = round(result["vllm"]["tokens_per_s"] / result["transformers"]["tokens_per_s"], 2)
    print(json.dumps(result, indent=2))
    print(f"sample stage (vLLM) vs transformers generate: {result['ratio']}x tokens/s")
    out = REPO / "benchmarks" / "results" / "sample_throughput.json"
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
