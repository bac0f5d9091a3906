"""The line every benchmark table starts with: cores, CPU model, torch threads, load."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        return names[0] if names else platform.processor() or "unknown CPU"
    except OSError:
        return platform.processor() or "unknown CPU"


def machine() -> str:
    """``"2 cores, AMD EPYC ..., torch 2.13.0+cpu (2 threads), load 1.2"``."""
    text = f"{os.cpu_count()} cores, {cpu_model()}"
    try:
        import torch

        text += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        pass
    else:
        text += f", kernel sums {kernel_sums()}"
    if hasattr(os, "getloadavg"):
        text += f", load average {os.getloadavg()[0]:.1f} at start"
    return text


def kernel_sums() -> str:
    """Which path meshop's kernel layers sum messages in: its compiled C kernel or PyTorch."""
    from meshop.nn import compiled

    if compiled.available():
        return "in C (compiled kernel)"
    return "in PyTorch (" + ("MESHOP_COMPILED_KERNELS=0" if compiled.mode() == "off" else compiled._unavailable) + ")"
