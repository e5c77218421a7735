"""Scale-out: launch plans for the GPU recipes, training as multi-process accelerate/DeepSpeed jobs
(2 processes over gloo on CPU), and data-parallel stages sharded on a local Ray cluster.

The GPU recipes cannot run here (no GPU): their plans are checked. Training with 2 processes and
DeepSpeed ZeRO-2 runs for real on the tiny model, as does Ray with 2 shards.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows import launch
from tasks import world
from tasks.common import digest_json
from tasks.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent
TINY = {"bootstrap": {"tiny": {"hidden_size": 64, "num_layers": 1, "num_heads": 1, "intermediate_size": 128,
                               "max_len": 128, "vocab_size": 300}}}


# ---------------------------------------------------------------------------------------------
# Plans (no GPU needed)

def plan_lines(config: str, *sets: str) -> dict[str, tuple[str, str]]:
    from flows.cli import app
    args = ["plan", str(REPO / "configs" / config)] + [x for s in sets for x in ("--set", s)]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    return {line.split()[0]: (line, lines[i + 1].strip()) for i, line in enumerate(lines[1:], 1)
            if line and not line.startswith(" ")}


def test_plan_of_the_7b_recipe_covers_every_gpu_of_one_node_and_of_four():
    plan = plan_lines("qwen2.5-math-7b.yaml")
    for stage in ("sample", "reward-sample", "evaluate"):
        assert "ray task per shard | 8 shards | 1 GPU(s) per shard | vLLM tp=1 dtype=bfloat16" in plan[stage][0]
    assert "8 shards | 0 GPU(s) per shard" in plan["verify"][0]        # the verifier is CPU work
    sft, command = plan["sft"]
    assert "accelerate launch | 8 processes on one node | 8 GPU(s) per job | DeepSpeed infra/zero3.json" in sft
    assert command.startswith("$ accelerate launch --num_processes 8 --num_machines 1 --mixed_precision bf16")
    assert "--multi_gpu -m tasks.sft --spec SPEC.json" in command
    assert "DeepSpeed infra/zero2.json" in plan["reward"][0] and "-m tasks.reward " in plan["reward"][1]
    assert "in-process" in plan["select"][0] and "in-process" in plan["problems"][0]
    four = plan_lines("qwen2.5-math-7b.yaml", "cluster.nodes=4")
    assert "32 shards | 1 GPU(s) per shard" in four["sample"][0]
    assert "8 processes on one node" in four["sft"][0]          # training stays on one node


def test_plan_of_the_1_5b_recipe_and_of_the_tiny_default():
    plan = plan_lines("qwen2.5-math-1.5b.yaml")
    assert "8 shards | 1 GPU(s) per shard" in plan["sample"][0]
    assert "8 processes on one node" in plan["sft"][0] and "DeepSpeed infra/zero2.json" in plan["sft"][0]
    tiny = plan_lines("tiny.yaml")
    assert all(line.startswith(f"{stage:<14} this process | in-process | 0 GPU(s) per job")
               for stage, (line, _) in tiny.items() if stage != "cluster:")


def test_every_deepspeed_config_a_recipe_names_exists():
    for path in (REPO / "configs").glob("*.yaml"):
        cfg = load_config(path)
        for section in (cfg.sft.train, cfg.reward.train, cfg.grpo, cfg.bootstrap.train):
            if section.deepspeed:
                assert (REPO / section.deepspeed).is_file(), (path.name, section.deepspeed)


def test_launch_command_multi_process_only_when_asked():
    two = Config.model_validate({"sft": {"train": {"num_processes": 2, "deepspeed": "infra/zero2.json"}}})
    cmd = launch.launch_command("sft", two, "s.json", "r.json", 1234)
    assert cmd[1:5] == ["-m", "accelerate.commands.launch", "--num_processes", "2"] and "--multi_gpu" in cmd
    assert cmd[-6:] == ["-m", "tasks.sft", "--spec", "s.json", "--record", "r.json"]
    one_ds = Config.model_validate({"reward": {"train": {"deepspeed": "infra/zero2.json"}}})
    assert launch.launched("reward", one_ds) and "--multi_gpu" not in launch.launch_command("reward", one_ds, "s", "r")
    assert not launch.launched("sft", Config()) and launch.launch_command("sft", Config(), "s", "r")[1:3] == ["-m", "tasks.sft"]


# ---------------------------------------------------------------------------------------------
# Training: 2 processes, DeepSpeed ZeRO-2, gloo

@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from tasks.bootstrap import build_tiny_model, train_tokenizer

    root = tmp_path_factory.mktemp("scale")
    cfg = Config.model_validate(TINY)
    problems = world.make_problems(256, seed=3, ops=["add"], max_digits=2, zh_fraction=0.5)
    train_tokenizer([p["question"] for p in problems] + [world.solve_cot(p) for p in problems], 300, root / "tok")
    build_tiny_model(cfg.bootstrap.tiny, 0, root / "tok", root / "policy")
    pd.DataFrame({"problem_id": [p["id"] for p in problems], "prompt": [p["question"] + "\n" for p in problems],
                  "completion": [world.solve_cot(p) for p in problems]}).to_parquet(root / "kept.parquet")
    return root


def _sft(root: Path, name: str, **train) -> dict:
    cfg = Config.model_validate({**TINY, "sft": {"train": {"lr": 1e-3, "batch_size": 32, "lr_scheduler": "constant",
                                                           "max_steps": 8, **train}}})
    args = dict(sft=cfg.sft, verify=cfg.verify, prompt=cfg.prompt, max_length=128, policy=root / "policy",
                kept=[root / "kept.parquet"], corpus=None)
    return launch.execute("sft", cfg, str(root / name), args, digest_json(name), {}).counts


def test_sft_with_two_deepspeed_zero2_processes_matches_one_process(tiny_policy):
    one = _sft(tiny_policy, "sft-1")
    two = _sft(tiny_policy, "sft-zero2", num_processes=2, deepspeed="infra/zero2.json")
    assert (one["train_processes"], two["train_processes"]) == (1, 2)
    assert two["train_distributed"] == "DEEPSPEED" and one["train_distributed"] == "NO"
    assert len(one["loss_curve"]) == len(two["loss_curve"]) == 8
    # same data, same global batch: the same losses up to float reduction order (measured: equal to 4 decimals)
    assert max(abs(a - b) for a, b in zip(one["loss_curve"], two["loss_curve"])) < 2e-3
    assert one["loss_curve"][-1] < one["loss_curve"][0]


def test_zero2_checkpoint_loads_into_vllm_and_decodes_like_transformers(tiny_policy):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasks.config import EngineConfig
    from tasks.engine import generate, shutdown

    model = tiny_policy / "sft-zero2" / "model"
    assert not (model / "training_args.bin").exists()
    prompts = [p["question"] + "\n" for p in world.make_problems(6, seed=9, ops=["add"], max_digits=2, zh_fraction=0.5)]
    try:
        ours = generate(model, prompts, n=1, temperature=0.0, top_p=1.0, max_tokens=12, seed=0, stop=None,
                        engine_cfg=EngineConfig(max_num_seqs=8))
    finally:
        shutdown()
    tok = AutoTokenizer.from_pretrained(model)
    hf = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    for prompt, out in zip(prompts, ours):
        ids = tok(prompt, return_tensors="pt").input_ids
        with torch.inference_mode():
            gen = hf.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=tok.eos_token_id,
                              pad_token_id=tok.pad_token_id)
        assert tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True) == out[0]["response"], prompt


def test_reward_model_with_two_deepspeed_processes_matches_one(tiny_policy):
    rows = [{"problem_id": f"p{p}", "prompt": f"{p}+1=\n", "response": f"\\boxed{{{p + 1 if j % 2 else p}}}",
             "correct": bool(j % 2)} for p in range(48) for j in range(6)]
    pd.DataFrame(rows).to_parquet(tiny_policy / "groups.parquet")

    def reward(name, **train):
        cfg = Config.model_validate({**TINY, "reward": {"held_out_fraction": 0.1, "train": {
            "lr": 1e-3, "batch_size": 8, "lr_scheduler": "constant", "max_steps": 5, **train}}})
        args = dict(reward=cfg.reward, max_length=128, policy=tiny_policy / "policy", groups=tiny_policy / "groups.parquet")
        return launch.execute("reward", cfg, str(tiny_policy / name), args, digest_json(name), {}).counts

    one = reward("rm-1")
    two = reward("rm-zero2", num_processes=2, deepspeed="infra/zero2.json")
    assert two["train_distributed"] == "DEEPSPEED" and two["train_processes"] == 2
    assert max(abs(a - b) for a, b in zip(one["loss_curve"], two["loss_curve"])) < 2e-3
    assert one["rm_pair_acc"] == two["rm_pair_acc"]
    assert (tiny_policy / "rm-zero2" / "model" / "config.json").exists()


# ---------------------------------------------------------------------------------------------
# Ray: a local cluster started by the test, 2 shards

@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """`ray start --head --num-cpus 2` on a free port, its own temp dir; its processes killed after
    (`ray stop` would stop every Ray on the machine)."""
    import os
    import subprocess
    import sys
    import tempfile

    import psutil

    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))     # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    ray_cli = Path(sys.executable).parent / "ray"
    subprocess.run([str(ray_cli), "start", "--head", "--num-cpus", "2", "--port", str(launch.free_port()),
                    "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   check=True, env=env, timeout=300, capture_output=True)
    address = (temp / "ray_current_cluster").read_text().strip()
    yield address
    import ray
    ray.shutdown()
    mine = [p for p in psutil.process_iter(["cmdline"]) if str(temp) in " ".join(p.info["cmdline"] or [])]
    family = {p.pid: p for p in mine}
    for p in mine:
        try:
            family.update({c.pid: c for c in p.children(recursive=True)})
        except psutil.NoSuchProcess:
            pass
    for p in family.values():
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="module")
def smoke_bootstrap(tmp_path_factory):
    """The smoke config's round-0 policy (pretrained a little: a random model's near-flat
    distributions would make any comparison of samples meaningless)."""
    from tasks.bootstrap import run as bootstrap

    cfg = load_config(REPO / "configs" / "smoke.yaml")
    root = tmp_path_factory.mktemp("smoke-bootstrap")
    bootstrap(bootstrap=cfg.bootstrap, world=cfg.world, prompt=cfg.prompt, seed=0, n_test=cfg.evaluate.n_test,
              test_seed=cfg.evaluate.seed, out_dir=root)
    return cfg, root


def _stage(stage, cfg, out_dir, **args):
    from flows.stages import stage_args, stage_key
    full = stage_args(stage, cfg, args)
    return launch.execute(stage, cfg, str(out_dir), full, stage_key(stage, full), {})


def test_ray_shards_give_the_local_backends_samples_verdicts_and_metrics(ray_cluster, smoke_bootstrap, tmp_path):
    from flows.round import held_out
    base, boot = smoke_bootstrap
    on_ray = base.model_copy(update={"cluster": base.cluster.model_copy(
        update={"backend": "ray", "address": ray_cluster, "shards": 2})})
    outputs = {}
    for name, cfg in (("local", base), ("ray", on_ray)):
        d = tmp_path / name
        problems = _stage("problems", cfg, d / "problems", round_k=1, **held_out(cfg), policy=None, engine=None,
                          prompt=None)
        samples = _stage("sample", cfg, d / "sample", policy=boot / "model", problems=Path(problems.dir) / "problems.parquet")
        verified = _stage("verify", cfg, d / "verify", samples=Path(samples.dir) / "samples.parquet",
                          problems=Path(problems.dir) / "problems.parquet")
        evaluation = _stage("evaluate", cfg, d / "evaluate", stop=[], max_length=cfg.max_length(),
                            policy=boot / "model", rm=None, previous=None, title="t")
        outputs[name] = (samples, verified, evaluation)
    (ls, lv, le), (rs, rv, re_) = outputs["local"], outputs["ray"]
    for result in (rs, rv, re_):
        assert len(json.loads((Path(result.dir) / "shards.json").read_text())) == 2
        assert not Path(result.dir + ".shards").exists()           # merged, then the shard folders go
    assert not (Path(ls.dir) / "shards.json").exists()
    for local, ray in ((ls, rs), (lv, rv), (le, re_)):
        name = {"sample": "samples.parquet", "verify": "verified.parquet", "evaluate": "predictions.parquet"}[local.stage]
        pd.testing.assert_frame_equal(pd.read_parquet(Path(local.dir) / name), pd.read_parquet(Path(ray.dir) / name))
        assert ray.counts == local.counts
    assert json.loads((Path(le.dir) / "metrics.json").read_text()) == json.loads((Path(re_.dir) / "metrics.json").read_text())


def test_sigkill_during_a_sharded_stage_then_resume_reruns_only_the_unfinished_shard(ray_cluster, tmp_path):
    """The CLI killed after shard 0 of round 1's sample stage finished; --resume runs shard 1 only."""
    import os
    import signal
    import subprocess
    import sys
    import time

    home = tmp_path / "runs"
    sets = [f"cluster.address={ray_cluster}", "cluster.backend=ray", "cluster.shards=2",
            "cluster.cpus_per_shard=2",          # one shard at a time on the 2-CPU cluster: a kill lands between them
            "evaluate.n_test=8", "evaluate.n=1", "evaluate.modes=[cot]", "reward.enabled=false",
            "problems.n_per_round=16", "problems.evolve.fraction=0", "sample.tir_fraction=0"]
    args = [sys.executable, "-m", "flows.cli", "run", str(REPO / "configs" / "smoke.yaml"), "--home", str(home),
            "--rounds", "1", *[x for s in sets for x in ("--set", s)]]
    shards = home / "smoke" / "round-01" / "02-sample.shards"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(args, cwd=REPO, stdout=open(tmp_path / "first.log", "w"), stderr=subprocess.STDOUT,
                             env=env, start_new_session=True)
    deadline = time.time() + 900
    while not list(shards.glob("shard-*/manifest.json")):
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.time() < deadline, "no shard of round 1's sample stage finished"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    killed_at = time.time()
    first.wait()
    done_before = {m.parent.name: m.read_bytes() for m in shards.glob("shard-*/manifest.json")}
    assert len(done_before) == 1, "the kill landed after both shards"
    resumed = subprocess.run([*args, "--resume"], cwd=REPO, capture_output=True, text=True, env=env, timeout=1500)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert "sample: 2 shards, 1 finished before, 1 to run (ray)" in log
    stage = home / "smoke" / "round-01" / "02-sample"
    assert json.loads((stage / "manifest.json").read_text())["counts"]["samples"] == 16 * 2
    # the shard records: the one finished before the kill was reused as it was, the other ran on resume
    records = json.loads((stage / "shards.json").read_text())
    reused = [r for r in records if r["finished_at"] < killed_at]
    assert len(reused) == 1 and len(records) == 2
    before = json.loads(next(iter(done_before.values())))
    assert reused[0]["finished_at"] == before["finished_at"] and reused[0]["key"] == before["key"]
