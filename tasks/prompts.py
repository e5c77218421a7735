"""Turning a question into the prompt the policy sees; one function for tiny and real models.

Two reasoning modes, as in the report: "cot" (reason step by step, answer in \\boxed{}) and "tir"
(write Python, read its output, answer in \\boxed{}; tasks/tir.py runs the code).
"""
from __future__ import annotations

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
