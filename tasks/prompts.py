"""Turning a question into the prompt the policy sees; one function for tiny and real models."""
from __future__ import annotations

from tasks.config import PromptConfig


def build_prompt(question: str, tokenizer, cfg: PromptConfig) -> str:
    """Chat-template prompt with the report's CoT instruction, or the plain template (tiny model)."""
    if not cfg.chat_template:
        return cfg.template.format(question=question)
    messages = [{"role": "system", "content": cfg.system}] if cfg.system else []
    messages.append({"role": "user", "content": f"{question}\n{cfg.cot_instruction}"})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def build_prompts(questions: list[str], model_dir: str, cfg: PromptConfig) -> list[str]:
    tokenizer = None
    if cfg.chat_template:
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [build_prompt(q, tokenizer, cfg) for q in questions]
