"""Experiment configuration: pydantic models, one section per stage, loaded from one YAML file.

    from tasks.config import load_config
    cfg = load_config("configs/tiny.yaml")

Every model forbids unknown keys, so a typo is an error that names the field and the allowed
names instead of a silently ignored setting.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def result_fields(self) -> dict:
        """The section as the cache key sees it: every field but those that only say how a stage
        is launched (processes, DeepSpeed), which change where the work runs, not what it computes."""
        out = {}
        for name, field in type(self).model_fields.items():
            if (field.json_schema_extra or {}).get("launch_only"):
                continue
            value = getattr(self, name)
            out[name] = _plain(value)
        return out


def _plain(value):
    if isinstance(value, Section):
        return value.result_fields()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


LAUNCH_ONLY = {"launch_only": True}


class WorldConfig(Section):
    """The synthetic bilingual arithmetic world (embedded default)."""
    ops: list[Literal["add", "sub", "mul"]] = Field(["add", "sub", "mul"], description="operations to draw from")
    max_digits: int = Field(3, ge=1, le=6, description="largest operand digit count (mul: the first operand)")
    zh_fraction: float = Field(0.5, ge=0, le=1, description="share of problems written in Chinese")


class TinyModelConfig(Section):
    """A Qwen2-architecture model built from scratch (used when bootstrap.model_path is unset)."""
    hidden_size: int = Field(192, description="model width")
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(3, ge=1, description="vLLM's CPU attention wants head_dim in {32,64,80,96,112,128,...}")
    intermediate_size: int = Field(512)
    max_len: int = Field(192, description="context length in tokens")
    vocab_size: int = Field(640, description="target size of the byte-level BPE tokenizer")


class TrainConfig(Section):
    """Optimiser settings shared by pretraining and SFT (TRL SFTTrainer)."""
    lr: float = Field(3e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="overrides epochs when > 0")
    batch_size: int = Field(64, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    lr_scheduler: str = Field("cosine", description="a transformers scheduler name")
    completion_only: bool = Field(True, description="loss on the solution tokens only")
    bf16: bool = Field(False, description="True on GPUs; on CPU it is ~10x slower")
    seed: int = 0
    num_processes: int = Field(1, ge=1, json_schema_extra=LAUNCH_ONLY,
                               description="training processes (GPUs) of the job; with > 1, or with deepspeed "
                                           "set, the stage runs as an `accelerate launch` job (flows/launch.py)")
    deepspeed: str | None = Field(None, json_schema_extra=LAUNCH_ONLY,
                                  description="path to a DeepSpeed JSON config, e.g. infra/zero2.json (ZeRO-2) "
                                              "or infra/zero3.json (ZeRO-3)")


class BootstrapConfig(Section):
    """Round 0: the base policy. Either a checkpoint path, or a tiny model pretrained here."""
    model_path: str | None = Field(None, description="a local HF checkpoint folder; unset = build the tiny model")
    tiny: TinyModelConfig = TinyModelConfig()
    corpus_size: int = Field(20000, ge=1, description="problems in the pretraining corpus")
    sloppy_fraction: float = Field(0.6, ge=0, le=1, description="share of carry/borrow problems solved by the sloppy tutor")
    tir_fraction: float = Field(0.0, ge=0, le=1, description="share of corpus rows solved in TIR mode (code does the arithmetic)")
    tir_sloppy_fraction: float | None = Field(None, ge=0, le=1, description="share of TIR rows with a copying slip; unset = sloppy_fraction on carry problems")
    train: TrainConfig = TrainConfig(lr=3e-3, epochs=3, completion_only=False, warmup_ratio=0.02)


class PromptConfig(Section):
    """How a question becomes a prompt. The tiny model has no chat template; real models do."""
    chat_template: bool = Field(False, description="use the tokenizer's chat template")
    system: str | None = Field(None, description="system message (chat_template only)")
    cot_instruction: str = Field("Please reason step by step, and put your final answer within \\boxed{}.")
    template: str = Field("{question}\n", description="plain-text prompt when chat_template is false")
    tir_instruction: str = Field("Please integrate natural language reasoning with programs to solve the problem "
                                 "above, and put your final answer within \\boxed{}.",
                                 description="the report's TIR instruction (chat_template only)")
    tir_template: str = Field("{question} Use Python.\n", description="plain-text TIR prompt (the tiny world's TIR cue)")


class TirConfig(Section):
    """Tool-integrated reasoning: model-written code runs in the sandbox (docs/tir.md)."""
    max_calls: int = Field(3, ge=0, description="code executions per response (Qwen's math_eval: 3 + a final one)")
    timeout_s: float = Field(5.0, gt=0, description="wall-clock limit per execution")
    memory_mb: int = Field(512, ge=16, description="address-space limit per execution")
    workers: int | None = Field(None, ge=1, description="sandbox processes; unset = one per CPU")
    max_output_chars: int = Field(400, ge=10, description="longer outputs keep head and tail (Qwen's truncate)")
    dedupe_calls: bool = Field(True, description="run identical (earlier cells, code) once per step; "
                                                 "nondeterministic code then shares one output")


class FileSourceConfig(Section):
    """A JSONL or Parquet file of problems (the layouts under ../shared/data work as they are)."""
    path: str = Field(..., description="file path (relative paths from the working directory)")
    field_map: dict[Literal["question", "gold", "id", "lang"], str] = Field(
        default_factory=dict, description="our field -> the file's column, e.g. {question: prompt, gold: target}")


class EvolveConfig(Section):
    """New problems made from the round's own (MuggleMath-style); tasks/evolve.py."""
    fraction: float = Field(0.0, ge=0, le=4, description="evolved problems added, as a share of the round's pool")
    kinds: list[Literal["numbers", "condition", "inverse"]] = Field(["numbers", "inverse"], min_length=1)
    temperature: float = Field(0.7, ge=0, description="model-written variants (file sources)")
    max_tokens: int = Field(256, ge=8)
    seed: int = 0


class ProblemsConfig(Section):
    source: Literal["world", "files"] = Field("world", description="the tiny world, or the files listed in `files`")
    files: list[FileSourceConfig] = Field(default_factory=list, description="problem files (source: files)")
    on_bad: Literal["skip", "error"] = Field("skip", description="bad rows: skipped and listed in bad_rows.parquet, or the stage fails")
    n_per_round: int = Field(1500, ge=1, description="problems drawn per round (seeded; all when fewer)")
    seed: int = 1000
    evolve: EvolveConfig = EvolveConfig()

    @model_validator(mode="after")
    def _files_given(self):
        if self.source == "files" and not self.files:
            raise ValueError("source 'files' needs at least one entry in problems.files")
        return self


class EngineConfig(Section):
    """vLLM engine settings (the same engine serves sample and evaluate)."""
    dtype: str = Field("float32", description="float32 on CPU; bfloat16 on GPUs")
    enforce_eager: bool = Field(True, description="CUDA graphs off; required on CPU")
    kv_cache_gb: int = Field(1, ge=1, description="VLLM_CPU_KVCACHE_SPACE on CPU")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    max_num_seqs: int = Field(256, ge=1)
    max_model_len: int | None = Field(None, description="context limit; unset = the model's own")
    max_num_batched_tokens: int | None = Field(None, ge=1, description="tokens per engine step; unset = vLLM's default")
    enable_chunked_prefill: bool | None = Field(
        None, description="unset = off on CPU (vLLM-CPU 0.32 crashes on a seeded request whose prefill is "
                          "split: 'CPU Generator does not use offset'), vLLM's default on GPUs")
    seed: int = 0


class SampleConfig(Section):
    n: int = Field(8, ge=1, description="samples per problem")
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(96, ge=1)
    stop: list[str] = Field(default_factory=list, description="extra stop strings (EOS always stops)")
    tir_fraction: float = Field(0.0, ge=0, le=1, description="share of problems sampled in TIR mode (the rest CoT)")
    seed: int = 0


class VerifyConfig(Section):
    timeout_s: float = Field(5.0, gt=0, description="hard wall-clock limit per item")
    workers: int = Field(2, ge=0, description="verifier processes; 0 = inline")
    audit: bool = Field(True, description="also run plain math-verify and write the disagreements to audit.parquet")
    vote: bool = Field(True, description="problems without a gold answer: the majority answer of their samples stands in")
    vote_min_share: float = Field(0.5, ge=0, le=1, description="the vote counts only when this share of answered samples agrees")
    labels: Literal["gold", "vote"] = Field(
        "gold", description="how training samples are labelled: gold = the verifier against the gold answer "
                            "(the vote only where none exists); vote = every problem's own majority answer stands "
                            "in for its gold (no verifier: the `no-verifier` ablation). Evaluation always uses the gold")


class SelectConfig(Section):
    max_per_problem: int = Field(4, ge=1, description="correct paths kept per problem")
    dedupe: bool = Field(True, description="drop identical responses to the same problem")
    chooser: Literal["rm", "random"] = Field("rm", description="which correct paths are kept: the reward model's "
                                             "best, or a seeded random choice (the `random-select` ablation)")


class SFTConfig(Section):
    train: TrainConfig = TrainConfig(lr=3e-4, epochs=2)
    replay: bool = Field(True, description="train on every earlier round's kept data too")
    bootstrap_replay: int = Field(0, ge=0, description="bootstrap corpus examples mixed into each SFT")
    from_base: bool = Field(False, description="restart from the round-0 model each round (ReST style)")


class RewardConfig(Section):
    """The reward model (RM): trained each round from the new policy with the listwise loss."""
    enabled: bool = Field(True, description="train an RM each round and use it in select/evaluate")
    n: int = Field(6, ge=2, description="samples per problem in a training group (the report uses 6)")
    n_problems: int = Field(1000, ge=1, description="problems sampled for RM training data")
    temperature: float = Field(1.0, ge=0)
    max_tokens: int = Field(96, ge=1)
    held_out_fraction: float = Field(0.1, ge=0, lt=1, description="groups kept out of training for rm_pair_acc")
    train: TrainConfig = TrainConfig(lr=1e-4, epochs=1, batch_size=8, completion_only=False)


class GrpoConfig(Section):
    """GRPO after the last round (tasks/grpo.py): TRL's GRPOTrainer with the report's shaped reward
    sigmoid(0.5 * r_rm) + (r_verifier - 1), from the last policy, with the last reward model."""
    enabled: bool = Field(False, description="run the `rl` flow (problems -> grpo -> evaluate) after the rounds")
    n_problems: int = Field(512, ge=1, description="RL queries (a fresh, decontaminated problem pool)")
    num_generations: int = Field(8, ge=2, description="responses per prompt: the group GRPO normalises rewards in")
    batch_size: int = Field(64, ge=2, description="responses per optimiser step (a multiple of num_generations)")
    max_steps: int = Field(50, ge=1)
    lr: float = Field(1e-6, gt=0)
    temperature: float = Field(1.0, gt=0)
    max_tokens: int = Field(96, ge=1, description="completion budget per response")
    beta: float = Field(0.0, ge=0, description="KL penalty to the starting policy (TRL's default 0)")
    bf16: bool = Field(False, description="True on GPUs; on CPU it is ~10x slower")
    use_vllm: bool = Field(False, description="let TRL generate with vLLM (GPUs; needs trl's vLLM extras)")
    num_processes: int = Field(1, ge=1, json_schema_extra=LAUNCH_ONLY,
                               description="training processes (GPUs); > 1 or deepspeed: an accelerate launch job")
    deepspeed: str | None = Field(None, json_schema_extra=LAUNCH_ONLY,
                                  description="path to a DeepSpeed JSON config, e.g. infra/zero2.json")
    seed: int = 0

    @model_validator(mode="after")
    def _groups_fit(self):
        if self.batch_size % self.num_generations:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of num_generations {self.num_generations}")
        return self


class ScoreConfig(Section):
    batch_size: int = Field(64, ge=1, description="sequences per RM forward pass")


class DecontaminateConfig(Section):
    """13-gram + LCS-ratio decontamination against every evaluation set (the report's rule)."""
    enabled: bool = True
    ngram: int = Field(13, ge=1, description="n of the n-gram match, after normalisation")
    lcs_ratio: float = Field(0.6, ge=0, le=1, description="an n-gram candidate is contaminated above this ratio")
    mode: Literal["ngram+lcs", "any-ngram"] = Field("ngram+lcs")
    eval_sets: list[str] = Field(default_factory=list, description="JSONL files or benchmark folders to protect")
    workers: int = Field(2, ge=1)


class EvaluateConfig(Section):
    n_test: int = Field(500, ge=1, description="held-out problems")
    n: int = Field(8, ge=0, description="samples per problem for maj@n / pass@n (0 = greedy only)")
    temperature: float = Field(0.7, ge=0, description="sampling temperature for maj@n / pass@n")
    max_tokens: int = Field(96, ge=1)
    seed: int = 7
    benchmarks: list[str] = Field(default_factory=list, description="benchmark names under data_dir (e.g. gsm8k, math500), "
                                  "each optionally with its own limit (gsm8k:200); empty = the tiny world's held-out set")
    data_dir: str | None = Field(None, description="folder with <name>/test.jsonl; unset = $SELFIMPROVE_DATA or ../shared/data/benchmarks")
    limit: int | None = Field(None, ge=1, description="first N problems of each benchmark")
    modes: list[Literal["cot", "tir"]] = Field(["cot"], min_length=1, description="reasoning modes; TIR metrics get a tir_ prefix")
    tir_n: int | None = Field(None, ge=0, description="samples per problem in TIR mode; unset = n")

    @model_validator(mode="after")
    def _benchmark_limits(self):
        for entry in self.benchmarks:
            name, _, limit = entry.partition(":")
            if not name or (limit and not (limit.isdigit() and int(limit) > 0)):
                raise ValueError(f"benchmark {entry!r}: write a name, or name:N with N > 0 (e.g. gsm8k:200)")
        return self

    def benchmark_limits(self) -> dict[str, int | None]:
        """{benchmark name: first N problems or None for all}; a name's own :N wins over `limit`."""
        out = {}
        for entry in self.benchmarks:
            name, _, limit = entry.partition(":")
            out[name] = int(limit) if limit else self.limit
        return out


class ClusterConfig(Section):
    """Where the data-parallel stages (sample, reward-sample, verify, score, evaluate) and the
    training jobs run (docs/scale-out.md). `selfimprove plan CONFIG` prints the result."""
    backend: Literal["local", "ray"] = Field("local", description="local: this process (shards one after another); "
                                             "ray: each shard, and each training job, is a Ray task")
    address: str | None = Field(None, description="Ray address ('auto' on a cluster node, or HEAD_IP:6379); "
                                "unset with backend ray: a Ray instance started for this run on this machine")
    shards: int | None = Field(None, ge=1, description="shards of each data-parallel stage; unset = "
                               "nodes * gpus_per_node // engine.tensor_parallel_size (1 without GPUs)")
    nodes: int = Field(1, ge=1, description="machines in the Ray cluster (sizes the default shard count)")
    gpus_per_node: int = Field(0, ge=0, description="GPUs per machine; 0 = CPU only")
    cpus_per_shard: float = Field(1.0, gt=0, description="CPUs a shard reserves on Ray")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for Ray tasks (e.g. HF_HOME)")

    def shard_count(self, engine: "EngineConfig") -> int:
        if self.shards:
            return self.shards
        return max(1, self.nodes * self.gpus_per_node // engine.tensor_parallel_size)


class SynthesizeConfig(Section):
    """Generation 2's data (the report's Math Corpus v2): the last policy writes worked solutions,
    CoT and TIR, for fresh problems; the verified ones become pretraining text (tasks/synthesize.py)."""
    n_problems: int = Field(12000, ge=1, description="fresh problems the policy solves (world or problem files)")
    n: int = Field(2, ge=1, description="attempts per problem; one verified solution per problem is kept")
    temperature: float = Field(0.7, ge=0)
    max_tokens: int = Field(96, ge=1)
    tir_fraction: float = Field(0.25, ge=0, le=1, description="share of problems solved in TIR mode")
    seed: int = Field(5000, description="seeds the problems (a pool no round draws) and the sampling")


class PretrainConfig(Section):
    """Generation 2's base model from corpus v2 = the bootstrap corpus + synthesized text (tasks/pretrain.py)."""
    synth_ratio: float = Field(1.0, ge=0, description="synthesized rows per bootstrap-corpus row in corpus v2 "
                                                      "(all that were kept when there are fewer)")
    from_scratch: bool | None = Field(None, description="unset = from scratch for the tiny model (a fresh init, the "
                                      "bootstrap's tokenizer), continued pretraining of the base for a checkpoint")
    train: TrainConfig = TrainConfig(lr=3e-3, epochs=3, completion_only=True, warmup_ratio=0.02)
    seed: int = 1


class RunConfig(Section):
    name: str = Field("tiny", description="run folder name under the home")
    rounds: int = Field(3, ge=0, description="improvement rounds per generation")
    generations: int = Field(1, ge=1, le=9, description="2: the last policy synthesizes pretraining data, a new "
                                                        "base is pretrained on it and the rounds run again")
    seed: int = 0


class Config(Section):
    run: RunConfig = RunConfig()
    world: WorldConfig = WorldConfig()
    bootstrap: BootstrapConfig = BootstrapConfig()
    prompt: PromptConfig = PromptConfig()
    tir: TirConfig = TirConfig()
    engine: EngineConfig = EngineConfig()
    problems: ProblemsConfig = ProblemsConfig()
    sample: SampleConfig = SampleConfig()
    verify: VerifyConfig = VerifyConfig()
    select: SelectConfig = SelectConfig()
    sft: SFTConfig = SFTConfig()
    reward: RewardConfig = RewardConfig()
    score: ScoreConfig = ScoreConfig()
    decontaminate: DecontaminateConfig = DecontaminateConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    grpo: GrpoConfig = GrpoConfig()
    cluster: ClusterConfig = ClusterConfig()
    synthesize: SynthesizeConfig = SynthesizeConfig()
    pretrain: PretrainConfig = PretrainConfig()
    generation_overrides: dict[int, dict[str, Any]] = Field(
        {}, description="g -> {dotted field: value}: settings for generation g and every later one (its "
                        "synthesis, pretraining and rounds), e.g. {2: {sft.train.lr: 3.0e-4}}")

    @field_validator("generation_overrides")
    @classmethod
    def _overrides_leave_the_comparison_alone(cls, overrides: dict) -> dict:
        # A later generation is compared with the first on the same held-out problems, the same
        # world and prompt: those sections, and the run's shape, are one for the whole run.
        for g, updates in overrides.items():
            if g < 2:
                raise ValueError(f"generation_overrides: generation {g}: overrides start at generation 2 "
                                 "(generation 1 is the config itself)")
            for dotted in updates:
                section = dotted.split(".")[0]
                if section in FIXED_ACROSS_GENERATIONS:
                    raise ValueError(f"generation_overrides.{g}.{dotted}: {section} is the same for every "
                                     f"generation (fixed: {', '.join(sorted(FIXED_ACROSS_GENERATIONS))})")
        return overrides

    def for_generation(self, g: int) -> Config:
        """The config generation g runs with: this one plus generation_overrides for g and earlier
        generations (a later generation's value wins)."""
        updates = {}
        for start in sorted(self.generation_overrides):
            if start <= g:
                updates.update(self.generation_overrides[start])
        if not updates:
            return self
        data = self.model_dump(mode="json")
        _set_dotted(data, updates)
        return Config.model_validate(data)

    def max_length(self) -> int | None:
        """Token limit for training and RM scoring: the tiny model's context, or the model's own."""
        return None if self.bootstrap.model_path else self.bootstrap.tiny.max_len


FIXED_ACROSS_GENERATIONS = {"run", "world", "bootstrap", "prompt", "evaluate", "decontaminate", "generation_overrides"}


class ConfigError(ValueError):
    pass


def load_config(path: str | Path, overrides: dict | None = None) -> Config:
    """Read and validate a YAML config; errors name the file, the field and what is allowed."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    _set_dotted(data, overrides or {})
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{path}: invalid config\n{_explain(e)}") from None
    for g in sorted(cfg.generation_overrides):   # each generation's config is checked now, not hours in
        try:
            cfg.for_generation(g)
        except ValidationError as e:
            raise ConfigError(f"{path}: invalid generation_overrides for generation {g}\n{_explain(e)}") from None
    return cfg


def _set_dotted(data: dict, updates: dict) -> None:
    """Set `a.b.c: value` entries in a nested dict (the --set overrides, a generation's overrides)."""
    for dotted, value in updates.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value


def _explain(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        where = ".".join(str(x) for x in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            model = _section_at(err["loc"][:-1])
            allowed = ", ".join(model.model_fields) if model else "?"
            msg = f"unknown field; allowed here: {allowed}"
        lines.append(f"  {where}: {msg} (got {err.get('input')!r})")
    return "\n".join(lines)


def _section_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def section(cfg: Config, name: str) -> dict:
    """The config section `name` as a plain dict (part of that stage's cache key)."""
    return getattr(cfg, name).model_dump(mode="json")
