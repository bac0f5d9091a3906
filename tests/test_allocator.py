"""retain_freed_memory: a kernel layer's big temporaries stop page-faulting after a few layers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: the large temporaries of a kernel layer on ~400k edges (embedding, kernel, gather, message),
#: allocated and freed layer after layer; prints the page faults of each layer
PROGRAM = """
import json, resource, sys
import torch
from meshop.allocator import retain_freed_memory
tuned = retain_freed_memory() if sys.argv[1] == "tuned" else None
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
edges, per_layer = 389_000, []
for layer in range(8):
    before = faults()
    kernel = torch.ones(edges, 32) @ torch.ones(32, 48)
    gathered = torch.ones(edges, 48)
    message = kernel * gathered
    del kernel, gathered, message
    per_layer.append(faults() - before)
print(json.dumps([tuned, per_layer]))
"""


def _faults(mode: str) -> tuple[bool | None, list[int]]:
    run = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True)
    return tuple(json.loads(run.stdout))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_layer_temporaries_reuse_freed_pages():
    pages = 389_000 * (48 + 48 + 48) * 4 // 4096             # the three (E, 48) float tensors
    tuned, retained = _faults("tuned")
    _, default = _faults("default")
    assert tuned is True
    assert min(default[1:]) > pages // 2                      # glibc's default: fresh pages every layer
    assert max(retained[-3:]) < pages // 100                  # retained: the pages are written again
