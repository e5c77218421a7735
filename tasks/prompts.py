"""Turning a question into the prompt the policy sees; one function for tiny and real models.

Two reasoning modes, as in the report: "cot" (reason step by step, answer in \\boxed{}) and "tir"
(write Python, read its output, answer in \\boxed{}; tasks/tir.py runs the code).

`prompt_config_for` picks chat template or plain format for a model folder; `prompt_budget` and
`prompts_that_fit` tell which prompts fit the model's context with room for the answer.
"""
from __future__ import annotations

import json
from pathlib import Path

from tasks.config import PromptConfig

MODES = ("cot", "tir")


def build_prompt(question: str, tokenizer, cfg: PromptConfig, mode: str = "cot") -> str:
    """Chat-template prompt with the report's CoT or TIR instruction, or the plain template (tiny model)."""
    if mode not in MODES:
        raise ValueError(f"unknown reasoning mode {mode!r}; allowed: {', '.join(MODES)}")
    if not cfg.chat_template:
        return (cfg.tir_template if mode == "tir" else cfg.template).format(question=question)
    messages = [{"role": "system", "content": cfg.system}] if cfg.system else []
    instruction = cfg.tir_instruction if mode == "tir" else cfg.cot_instruction
    messages.append({"role": "user", "content": f"{question}\n{instruction}"})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def build_prompts(questions: list[str], model_dir: str, cfg: PromptConfig,
                  mode: str | list[str] = "cot") -> list[str]:
    """Prompts for many questions in one mode, or with a list, each question in its own mode."""
    modes = [mode] * len(questions) if isinstance(mode, str) else list(mode)
    if len(modes) != len(questions):
        raise ValueError(f"{len(questions)} questions but {len(modes)} modes")
    tokenizer = None
    if cfg.chat_template:
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [build_prompt(q, tokenizer, cfg, m) for q, m in zip(questions, modes)]


# ---------------------------------------------------------------------------------------------
# Fitting prompts to the model: its prompt format and its context

def has_chat_template(model_dir: str | Path) -> bool:
    """Whether the model folder's tokenizer carries a chat template (tokenizer_config.json, or the
    chat_template.jinja / chat_template.json file transformers 5 writes beside it)."""
    model_dir = Path(model_dir)
    if (model_dir / "chat_template.jinja").is_file() or (model_dir / "chat_template.json").is_file():
        return True
    tok_cfg = model_dir / "tokenizer_config.json"
    if not tok_cfg.is_file():
        return False
    try:
        return bool(json.loads(tok_cfg.read_text(encoding="utf-8")).get("chat_template"))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def prompt_config_for(model_dir: str | Path, cfg: PromptConfig) -> tuple[PromptConfig, str]:
    """The prompt settings to use with this model, and the format as words for a report.

    A model without a chat template (the tiny model, and every checkpoint this tool trains from
    it) learnt the plain `template` / `tir_template` format, so it is prompted that way even when
    the config asks for the chat template (the real-model configs do)."""
    if cfg.chat_template and not has_chat_template(model_dir):
        return cfg.model_copy(update={"chat_template": False}), "plain template (the model has no chat template)"
    return cfg, "chat template" if cfg.chat_template else "plain template"


def model_context(model_dir: str | Path, max_model_len: int | None = None) -> int | None:
    """Tokens the model can attend to: config.json's max_position_embeddings, capped by the
    engine's max_model_len; None when neither is known."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        config = {}
    limits = [v for v in (config.get("max_position_embeddings"), max_model_len) if isinstance(v, int) and v > 0]
    return min(limits) if limits else None


def prompt_budget(model_dir: str | Path, max_tokens: int, max_model_len: int | None = None) -> int | None:
    """Prompt tokens that leave room for max_tokens of answer; None = no known limit.
    ValueError (one line) when max_tokens alone fills the context."""
    context = model_context(model_dir, max_model_len)
    if context is None:
        return None
    if max_tokens >= context:
        raise ValueError(f"{model_dir}: max_tokens {max_tokens} leaves no room for a prompt in the model's "
                         f"context of {context} tokens; use a max_tokens below {context}")
    return context - max_tokens


def prompts_that_fit(prompts: list[str], model_dir: str | Path, budget: int | None) -> list[bool]:
    """For each prompt, whether its token count (the model's own tokenizer) is within budget."""
    if budget is None or not prompts:
        return [True] * len(prompts)
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]  # special tokens too, as vLLM counts
    return [n <= budget for n in lengths]
