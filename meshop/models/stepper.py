"""TimeStepper: a steady neural operator turned into a time stepper of a state on fixed nodes."""

from __future__ import annotations

import torch

from .base import NeuralOperator
from .heat_physics import FIELDS, HeatOperators, with_operator, with_source_on


class TimeStepper(NeuralOperator):
    r"""Advance a state one frame: :math:`s_{t+1} = s_t + \sigma \odot F([a_t, s_t])`, or with a
    physics term :math:`s_{t+1} = P(s_t) + \sigma \odot g \odot F([a_t, s_t, (P(s_t) - s_t)/\sigma])`.

    ``F`` is a registered steady operator (the *processor*, an MGNO by default) that reads the
    node features :math:`a_t` (geometry, constant inputs and the inputs that vary per frame, e.g.
    whether a heat source is on) beside the normalized state :math:`s_t`, and returns the
    normalized increment; :math:`\sigma` (``increment_scale``, a buffer saved with the weights)
    is the standard deviation of one frame's increment in state units, set from the training
    data, so the network outputs O(1) numbers. Trained with unrolled steps
    (:func:`~meshop.training.unrolled_step`): it is fed its own output, so it learns to live with
    the errors a rollout accumulates.

    Args:
        in_channels: width of ``data.x`` (geometry and inputs, see :func:`meshop.graph.feature_layout`).
        out_channels: state channels (e.g. 1 for a temperature).
        processor: registry name of the steady operator ``F``.
        varying_columns: columns of ``data.x`` that hold inputs varying per frame; step ``k``
            of an unrolled batch takes them from ``data.varying[:, :, k]``.
        processor_options: hyper-parameters of the processor.
        physics: ``"heat"``: the step is the physics term ``P`` (one frame of the part's P1
            heat equation, :mod:`meshop.models.heat_physics`) plus the processor's learned
            correction, scaled by the learned gate ``g`` (zero at the start of training);
            None: the processor's increment alone.
        frame_dt: the frame step τ (units d²/α) the physics term advances; needed with ``physics``.

    Graph needs: the processor's (its :meth:`prepare`). Batches carry ``state (N, S)`` (the
    normalized initial state), ``varying (N, V, K)`` and, for training, ``future (N, S, K)``;
    optionally ``held_mask (N,)`` and ``held_value (N, S)``: nodes whose state is known (held
    surfaces), overwritten after every step; and what :meth:`attach_mesh` and
    :meth:`attach_window` add (with ``physics="heat"``: the tensors of
    :func:`~meshop.models.heat_physics.heat_operator` and ``heat_on (N, K)``, the source's
    on-fraction per step). ``state_mean`` and ``state_std`` (buffers, physics only, set by
    :meth:`set_statistics`) decode the state to kelvin.

    The trainer (:class:`~meshop.training.Run`) and :func:`~meshop.rollout.rollout` call
    :meth:`dataset_options`, :meth:`set_statistics`, :meth:`attach_mesh` and
    :meth:`attach_window` of every time stepper; a family overrides what it needs (e.g.
    :class:`~meshop.models.mmpde.MMPDE` attaches the moved mesh to each window).
    """

    time_dependent = True

    def __init__(self, in_channels: int, out_channels: int, dim: int, processor: str = "mgno",
                 varying_columns: list[int] | None = None, processor_options: dict | None = None,
                 physics: str | None = None, frame_dt: float | None = None):
        from . import get

        varying_columns = list(varying_columns or [])
        processor_options = dict(processor_options or {})
        physical = {"physics": physics, "frame_dt": frame_dt} if physics is not None else {}
        super().__init__(in_channels, out_channels, dim, processor=processor, varying_columns=varying_columns,
                         processor_options=processor_options, **physical)
        bad = [c for c in varying_columns if not 0 <= c < in_channels]
        if bad:
            raise ValueError(f"varying_columns {bad} are not columns of the {in_channels} node features.")
        if physics not in (None, "heat"):
            raise ValueError(f"unknown physics term {physics!r}; expected 'heat' or none.")
        if physics is not None and not (isinstance(frame_dt, (int, float)) and frame_dt > 0):
            raise ValueError(f"the physics term needs the frame step frame_dt > 0, got {frame_dt!r}.")
        extra = out_channels if physics else 0      # the physics term's increment, as an input
        steady = get(processor, in_channels + out_channels + extra, out_channels, dim, **processor_options)
        if steady.time_dependent:
            raise ValueError(f"the processor of a time stepper must be a steady model, not '{processor}'.")
        self._attach(steady, out_channels, varying_columns, steady.uses_mesh_graph, None, physics, frame_dt)

    def _attach(self, processor: torch.nn.Module, out_channels: int, varying_columns: list[int],
                uses_mesh_graph: bool, receptive_hops: int | None, physics: str | None = None,
                frame_dt: float | None = None) -> None:
        """Store the processor ``F`` and register what the integrator reads: the increment scale,
        the varying columns and, with a physics term, the state statistics and the gate
        (subclasses with their own processor, e.g. :class:`~meshop.models.mppde.MPPDE`, call it)."""
        self.physics, self.frame_dt = physics, frame_dt
        self.processor = processor
        self.uses_mesh_graph, self.receptive_hops = uses_mesh_graph, receptive_hops
        self.register_buffer("increment_scale", torch.ones(out_channels))
        self.register_buffer("varying_index", torch.tensor(varying_columns, dtype=torch.long))
        if physics:
            self.register_buffer("state_mean", torch.zeros(out_channels))
            self.register_buffer("state_std", torch.ones(out_channels))
            self.gate = torch.nn.Parameter(torch.zeros(out_channels))

    @classmethod
    def dataset_options(cls, time: dict, options: dict) -> dict:
        """Hyper-parameters taken from a trajectory dataset's ``time`` entry (its manifest's), given
        the user's ``options``: the physics term's ``frame_dt`` unless the user set it."""
        wanted = options.get("physics") and "frame_dt" not in options
        return {"frame_dt": time.get("frame_dt")} if wanted else {}

    def set_statistics(self, increment_scale: torch.Tensor, state_mean: torch.Tensor,
                       state_std: torch.Tensor) -> None:
        """Set what the training data says, ``(S,)`` each: σ (``increment_scale``, normalized units)
        and, with a physics term, the state's normalization (mean and std, state units)."""
        self.increment_scale.copy_(increment_scale)
        if self.physics:
            self.state_mean.copy_(state_mean)
            self.state_std.copy_(state_std)

    @property
    def integrator(self) -> str:
        """The step, in words (the checkpoint's ``dynamics.integrator``)."""
        if self.physics:
            return (f"P(s) + increment_scale * gate * F(a, s, P(s) - s), P: one RKL2 super-step of the "
                    f"{self.physics} equation's P1 FEM, one frame per step")
        return "s + increment_scale * F(a, s), one frame per step"

    def prepare(self, data):
        return self.processor.prepare(data)

    def attach_mesh(self, data, mesh):
        """``data``, the single-mesh graph of :class:`~meshop.Mesh` ``mesh`` (after :meth:`prepare`,
        before batching), with what the model reads of the mesh beyond its graph; called once per
        mesh (a trajectory's windows share it). The physics term: its FEM matrices
        (:func:`~meshop.models.heat_physics.with_operator`); otherwise ``data`` unchanged."""
        return with_operator(data, mesh) if self.physics else data

    def attach_window(self, data, mesh, state: torch.Tensor, steps: int, drive: dict):
        """``data`` (from :meth:`attach_mesh`) with what the model reads of one training window or
        rollout of ``steps`` steps from the normalized ``state (N, S)``; ``drive``: the inputs
        given per step, name -> ``(steps, N, ...)`` physical values. The physics term: ``heat_on
        (N, steps)`` from the ``source_on`` input (0 without it); otherwise ``data`` unchanged."""
        if not self.physics:
            return data
        return with_source_on(data, drive.get(FIELDS["on"]), steps, mesh.n_points, state.device)

    def before_step(self, data, state: torch.Tensor, k: int):
        """``data`` for step ``k`` of a rollout (from :meth:`attach_window`, or as the previous
        step left it), given the normalized ``state (N, S)`` it starts from; unchanged by default
        (MM-PDE moves its mesh to the state here)."""
        return data

    def features(self, data, k: int = 0) -> torch.Tensor:
        """``(N, F)`` node features of step ``k``: ``data.x`` with the varying inputs of that step."""
        if not len(self.varying_index) or not hasattr(data, "varying"):
            return data.x
        x = data.x.clone()
        x[:, self.varying_index] = data.varying[:, :, k]
        return x

    def operators(self, data):
        """The physics term's matrices of ``data`` (None without physics): build once per rollout."""
        return HeatOperators(data) if self.physics else None

    def step(self, data, state: torch.Tensor, k: int = 0, operators=None) -> torch.Tensor:
        """The normalized state ``(N, S)`` one frame after ``state``, with step ``k``'s inputs
        (``operators``: :meth:`operators` of ``data``, built here when not given)."""
        if self.physics:
            operators = operators or self.operators(data)
            kelvin = state * self.state_std + self.state_mean
            base = (operators.frame(kelvin, data.heat_on[:, k: k + 1], self.frame_dt) - self.state_mean) / self.state_std
            physics = (base - state) / self.increment_scale
            correction = self.processor(data, x=torch.cat([self.features(data, k), state, physics], dim=1))
            state = base + self.increment_scale * self.gate * correction
        else:
            increment = self.processor(data, x=torch.cat([self.features(data, k), state], dim=1))
            state = state + self.increment_scale * increment
        held = getattr(data, "held_mask", None)
        return state if held is None else torch.where(held[:, None], data.held_value, state)

    def forward(self, data) -> torch.Tensor:
        """One step from ``data.state``."""
        return self.step(data, data.state)

    @torch.no_grad()
    def rollout(self, data, state: torch.Tensor, steps: int, callback=None) -> torch.Tensor:
        """``(steps, N, S)`` normalized states after 1..``steps`` frames from ``state (N, S)``.

        ``data.varying (N, V, steps)``, when the model has varying inputs, gives them per step;
        ``callback(k)`` is called after each step (progress bars).
        """
        states, operators = [], self.operators(data)
        for k in range(steps):
            data = self.before_step(data, state, k)
            state = self.step(data, state, k, operators)
            states.append(state)
            if callback is not None:
                callback(k)
        return torch.stack(states)
