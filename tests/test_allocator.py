"""reused_memory: a kernel layer's big temporaries stop page-faulting after a few layers, and the
memory kept for them is given back when the block ends."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: the large temporaries of a kernel layer on ~400k edges (embedding, kernel, gather, message),
#: allocated and freed layer after layer; prints whether the settings applied, the page faults
#: of each layer and the resident MiB inside the block and after it
PROGRAM = """
import json, os, resource, sys
import torch
from meshop.allocator import reused_memory
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
resident = lambda: int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
with reused_memory(sys.argv[1] == "reuse") as applied:
    per_layer = []
    for layer in range(8):
        before = faults()
        kernel = torch.ones(389_000, 32) @ torch.ones(32, 48)
        gathered = torch.ones(389_000, 48)
        message = kernel * gathered
        del kernel, gathered, message
        per_layer.append(faults() - before)
    inside = resident()
print(json.dumps([applied, per_layer, inside, resident()]))
"""


def _run(mode: str):
    run = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_layer_temporaries_reuse_freed_pages_and_memory_is_given_back():
    pages = 389_000 * (48 + 48 + 48) * 4 // 4096             # the three (E, 48) float tensors
    applied, reused, inside, after = _run("reuse")
    not_applied, fresh, _, _ = _run("system")
    assert applied is True and not_applied is False
    assert min(fresh[1:]) > pages // 2                        # glibc's default: fresh pages every layer
    assert max(reused[-3:]) < pages // 100                    # reused: the same pages written again
    assert inside - after > 0.8 * pages * 4096 / 2**20        # kept while inside, given back after
