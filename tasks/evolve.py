"""Problem evolution (MuggleMath-style): new training problems made from existing ones, each with
its parent's id in `parent_id` and the kind of change in `evolution`.

- The tiny world (and any problem with op/a/b fields): programmatic variants with exact golds.
  "numbers": the same operation with new numbers of the same digit counts; "inverse": the question
  turned around (a + b = c asked as "had some, got b, now c: how many at first?", solved as c - b;
  a - b = c asked as "gave away b, c left: how many at first?", solved as c + b). Multiplication
  has no inverse here (the world has no division), so it gets new numbers.
- Real problems: a prompt through the sample engine (vLLM) asks the policy to rewrite the problem
  ("numbers": new numbers, "condition": one added condition, "inverse": a given quantity becomes
  the unknown). Their gold is null: the verify stage's majority vote decides (tasks/verify_stage.py).

    from tasks.evolve import evolve_world
    kids = evolve_world(parents, 100, seed=1, kinds=["numbers", "inverse"], max_digits=2, exclude=keys)
"""
from __future__ import annotations

import random

from tasks import world

INVERSE_TEMPLATES = {
    ("add", "en"): "{name} had some apples and bought {b} more. Now {name} has {c} apples. "
                   "How many apples did {name} have at first?",
    ("add", "zh"): "{name}有一些苹果，又买了{b}个，现在有{c}个。{name}原来有多少个苹果？",
    ("sub", "en"): "{name} gave away {b} stickers and has {c} left. How many stickers did {name} have at first?",
    ("sub", "zh"): "{name}送出了{b}张贴纸，还剩{c}张。{name}原来有多少张？",
}
LLM_INSTRUCTIONS = {
    "numbers": "Change the numbers in it (keep it solvable, with a whole-number answer).",
    "condition": "Add one more condition to it that changes the answer.",
    "inverse": "Turn it around: make one of the given quantities the unknown, and state the original "
               "answer as a given.",
}
LLM_PROMPT = ("Rewrite the following math problem into a new problem. {instruction}\n"
              "Reply with the new problem only.\n\nProblem: {question}")


def _same_digits(rng: random.Random, x: int) -> int:
    digits = len(str(x))
    return rng.randint(10 ** (digits - 1) if digits > 1 else 1, 10**digits - 1)


def world_variant(parent: dict, kind: str, rng: random.Random) -> dict | None:
    """One programmatic variant of a world problem, or None when `kind` does not apply."""
    op, a, b, lang = parent["op"], int(parent["a"]), int(parent["b"]), parent["lang"]
    name = rng.choice(world.NAMES_ZH if lang == "zh" else world.NAMES_EN)
    if kind == "numbers" or (kind == "inverse" and op == "mul"):
        kind = "numbers"
        for _ in range(20):
            x, y = _same_digits(rng, a), (rng.randint(2, 9) if op == "mul" else _same_digits(rng, b))
            if op == "sub":
                x, y = max(x, y), min(x, y)
            if (x, y) != (a, b):
                break
        else:
            return None
        question = rng.choice(world.TEMPLATES[(op, lang)]).format(name=name, a=x, b=y)
        new_op = op
    elif kind == "inverse":
        c = world.exact(op, a, b)
        question = INVERSE_TEMPLATES[(op, lang)].format(name=name, b=b, c=c)
        new_op, x, y = ("sub", c, b) if op == "add" else ("add", c, b)
    else:
        return None
    return {"op": new_op, "a": x, "b": y, "lang": lang, "question": question,
            "gold": str(world.exact(new_op, x, y)), "carry": world.needs_carry(new_op, x, y),
            "parent_id": parent["id"], "evolution": kind}


def evolve_world(parents: list[dict], n: int, *, seed: int, kinds: list[str],
                 exclude: set[tuple] | None = None) -> list[dict]:
    """n variants of randomly chosen parents (ids `<parent>~e<i>`), none with a key in `exclude`."""
    rng = random.Random(seed)
    out: list[dict] = []
    tries = 0
    while len(out) < n and parents and tries < 20 * n:
        tries += 1
        child = world_variant(rng.choice(parents), rng.choice(kinds), rng)
        if child is None or (exclude and (child["op"], child["a"], child["b"]) in exclude):
            continue
        child["id"] = f"{child['parent_id']}~e{len(out)}"
        out.append(child)
    return out


def llm_prompts(parents: list[dict], kinds: list[str], seed: int) -> list[tuple[dict, str, str]]:
    """(parent, kind, instruction text) per parent, the kind drawn with `seed`."""
    rng = random.Random(seed)
    out = []
    for p in parents:
        kind = rng.choice(kinds)
        out.append((p, kind, LLM_PROMPT.format(instruction=LLM_INSTRUCTIONS[kind], question=p["question"])))
    return out


def clean_generated(text: str, parent_question: str) -> str | None:
    """The new problem from a model reply: first paragraph, a leading "Problem:" dropped; None when
    empty, a copy of the parent, or cut off mid-word without a question or full stop."""
    text = text.strip()
    for prefix in ("New problem:", "Problem:", "新问题：", "问题："):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    text = text.split("\n\n")[0].strip()
    if len(text) < 10 or text == parent_question.strip():
        return None
    if not text.endswith(("?", ".", "？", "。", "$")):
        return None
    return text


def evolve_with_llm(generate, parents: list[dict], *, kinds: list[str], seed: int) -> list[dict]:
    """Variants written by a model. `generate(user_messages) -> list[str]` (one reply each) is the
    caller's engine call, so this module stays free of vLLM. Gold is None (the vote decides)."""
    jobs = llm_prompts(parents, kinds, seed)
    replies = generate([prompt for _, _, prompt in jobs])
    out = []
    for (parent, kind, _), reply in zip(jobs, replies, strict=True):
        question = clean_generated(reply, parent["question"])
        if question is None:
            continue
        out.append({"id": f"{parent['id']}~e{len(out)}", "source": parent.get("source", "evolved"),
                    "lang": parent.get("lang", "en"), "question": question, "gold": None,
                    "parent_id": parent["id"], "evolution": kind})
    return out
