"""Bundled models' outputs before and after a change to the hot paths, compared to 1e-6.

    PYTHONPATH=/path/to/old/checkout python benchmarks/check_outputs.py save before.npz
    PYTHONPATH=$PWD python benchmarks/check_outputs.py compare before.npz

Cases: every bundled model on ``examples/parts/bracket.vtu`` and on a 30k-node cube
(``benchmarks/predict.py``'s mesh). ``compare`` prints the largest difference per case, relative
to the field's largest magnitude, and exits 1 above the tolerance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("heat3d", "heat3d-gno")
TOLERANCE = 1e-6


def outputs() -> dict[str, np.ndarray]:
    """``{"model/mesh": predicted field}`` for every bundled model and test mesh."""
    sys.path.insert(0, str(Path(__file__).parent))
    import meshop
    from predict import cube

    from meshop.prediction import Predictor

    meshes = {"bracket": meshop.read(ROOT / "examples/parts/bracket.vtu"), "cube30k": cube(30_000)}
    fields = {}
    for model in MODELS:
        predictor = Predictor(model)
        target = predictor.checkpoint.fields.targets[0]
        for name, mesh in meshes.items():
            fields[f"{model}/{name}"] = np.asarray(predictor.predict(mesh).mesh.point_data[f"{target}_pred"])
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["save", "compare"], help="save this checkout's outputs, or compare with saved ones")
    parser.add_argument("path", help="the .npz file written by save")
    args = parser.parse_args()
    fields = outputs()
    if args.action == "save":
        np.savez(args.path, **fields)
        return
    before, worst = np.load(args.path), 0.0
    for name, field in fields.items():
        diff = np.abs(field - before[name]).max() / max(np.abs(before[name]).max(), 1e-30)
        worst = max(worst, diff)
        print(f"{name:24s} {field.size:>8,} values  max |after - before| / max |before| = {diff:.2e}")
    print("same to 1e-6" if worst <= TOLERANCE else f"DIFFERENT: {worst:.2e} > {TOLERANCE:g}")
    sys.exit(0 if worst <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
