"""What the simulated world is made of: GPU models with their price bands, places, labels,
images, templates and machine parts.

Fixed tables, apart from the code that draws from them, so the fleet and the market pick
their GPUs and places from the same list (a fleet's machine is one the market can offer).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuModel:
    """A GPU model with its realistic per-GPU price band and performance figures."""

    name: str
    price_low: float
    price_high: float
    ram_mb: int
    compute_cap: int
    dlperf: float
    tflops: float
    mem_bw: float
    weight: float


GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel("RTX 3090", 0.20, 0.35, 24576, 860, 20.1, 35.6, 936.2, 0.24),
    GpuModel("RTX 4090", 0.35, 0.70, 24564, 890, 41.5, 82.6, 1008.0, 0.30),
    GpuModel("RTX A5000", 0.25, 0.40, 24564, 860, 22.2, 27.5, 768.0, 0.10),
    GpuModel("A100 SXM4", 1.10, 1.80, 81920, 800, 54.3, 19.5, 2039.0, 0.14),
    GpuModel("H100 SXM", 1.80, 3.00, 81559, 900, 96.2, 66.9, 3352.0, 0.12),
    GpuModel("L40S", 0.60, 1.00, 46068, 890, 45.0, 91.6, 864.0, 0.10),
)

LOCATIONS: tuple[tuple[str, str], ...] = (
    ("Washington", "US"), ("Texas", "US"), ("California", "US"), ("Quebec", "CA"),
    ("Frankfurt", "DE"), ("Oslo", "NO"), ("Helsinki", "FI"), ("Warsaw", "PL"),
    ("Tokyo", "JP"), ("Taipei", "TW"), ("Sao Paulo", "BR"), ("Amsterdam", "NL"),
)
LABELS: tuple[str | None, ...] = (
    "llm-finetune", "sd-inference", "research-ablation", "batch-embeddings", "dev-box",
    "eval-harness", None, None, None,
)
IMAGES: tuple[str, ...] = (
    "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-devel", "vastai/base-image:cuda-12.4.1-auto",
    "nvidia/cuda:12.2.0-devel-ubuntu22.04", "tensorflow/tensorflow:latest-gpu",
    "vllm/vllm-openai:v0.6.3", "ghcr.io/huggingface/text-generation-inference:2.4",
)
TEMPLATES: tuple[tuple[int, str, str], ...] = (
    (204, "PyTorch (Vast)", "4b3c1d2e0f6a7b8c9d0e1f2a3b4c5d6e"),
    (311, "vLLM", "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"),
    (418, "Stable Diffusion WebUI", "1f2e3d4c5b6a79881726354453627180"),
)
CPU_NAMES = ("AMD EPYC 7543 32-Core Processor", "Xeon\u00ae Silver 4110", "AMD Ryzen 9 7950X",
             "Xeon\u00ae Gold 6338", "AMD EPYC 9354 32-Core Processor")
MOBOS = ("ROMED8-2T", "S7109GM2NR", "X13DEG-OAD", "PRO WS WRX80E-SAGE SE", "H12DSG-O-CPU")
DISKS = ("Samsung SSD 980 PRO", "Samsung SSD 860", "WD_BLACK SN850X", "Micron 7450")
SECRET_ENV_NAMES = ("HF_TOKEN", "WANDB_API_KEY", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY")
