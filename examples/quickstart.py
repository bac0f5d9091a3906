"""Quick start: read a part, predict its temperature with the bundled model, look at the numbers.

    python examples/quickstart.py                       # the bundled bracket
    python examples/quickstart.py my_part.stl --mesh-size 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import meshop
from meshop.outputs import prediction_path
from meshop.prediction import predict

HERE = Path(__file__).parent


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", default=HERE / "parts" / "bracket.vtu")
    parser.add_argument("--mesh-size", type=float, default=None, help="element size for CAD surfaces")
    parser.add_argument("--out", default=None, help="where to write the prediction")
    args = parser.parse_args(argv)

    part = meshop.read(args.part)
    print(part)                                   # what was read: points, cells, fields
    print(f"boundary nodes: {part.boundary_mask.sum()}, size (bbox diagonal): {part.size:.4g}")

    # no 'source' / 'boundary_temperature' fields: the model's defaults apply (q = 1, T = 0 on
    # the surface), which maps where the part is thick and slow to cool
    # written in the working folder, named as meshop names it (bracket.vtu -> bracket.pred.vtu)
    result = predict(part, out=args.out or prediction_path(Path(Path(args.part).name)))
    for note in result.notes:
        print("note:", note)
    temperature = result.mesh.point_data["temperature_pred"]
    hottest = result.mesh.points[np.argmax(temperature)]
    print(f"predicted temperature: max {temperature.max():.4g} at {np.round(hottest, 3)}, "
          f"mean {temperature.mean():.4g}  ({result.seconds:.2f} s, {result.mesh.n_points} nodes)")
    for target, found in result.estimate.items():    # checked against the PDE on this mesh
        print(f"estimated relative error of {target}: {found.relative:.1%} (finite-element residual)")
    print(f"wrote {result.path}")
    return {"max": float(temperature.max()), "path": str(result.path)}


if __name__ == "__main__":
    main()
