"""The material point method behind the ``mpm2d`` / ``mpm3d`` problems.

:mod:`.kernels` (warp MLS-MPM kernels), :mod:`.solver` (``MPMSolver``, ``MaterialParameters``),
:mod:`.scene` (random bodies filled with particles), :mod:`.experiments` (dam break and granular
column collapse, the published data they are checked against). Importing this package does not
import warp; :mod:`.kernels` does.
"""
