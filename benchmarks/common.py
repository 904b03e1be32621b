"""Helpers the asv benchmarks share."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def skip(reason: str) -> None:
    """asv shows a benchmark whose setup raises NotImplementedError as n/a."""
    raise NotImplementedError(reason)


def nist_dir() -> Path | None:
    """../shared/data/nist beside the checkout (or $OPTBENCH_NIST_DIR), if present."""
    explicit = os.environ.get("OPTBENCH_NIST_DIR")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" / "nist")
    return next((p for p in candidates if (p / "Norris.csv").is_file()), None)
