"""The folder-of-files runner behind ``meshop train``: reads a dataset folder, builds the graphs,
the model, AdamW, a one-cycle or cosine schedule and the model family's step function, hands them
to a :class:`~meshop.training.Trainer`, and writes best and last checkpoints (resumable bit for
bit), metrics.csv and a loss curve."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.loader import DataLoader

from .. import models
from ..checkpoint import load
from ..data.dataset import field_names
from ..errors import MeshError, file_in_the_way
from ..graph import GraphSettings, build_graph, decode, feature_count, feature_layout
from ..metrics import relative_l2
from ..priors import known_prior
from . import mover, particles
from .data import SPLITS, TrainingData, load_training_data
from .particles import is_particle_dataset
from .options import check_arguments, check_options
from .records import write_loss_curve, write_metrics
from .checkpoints import check_init, initialize, restore_run, save_run
from .distributed import Distributed, check_environment
from .steps import supervised_step, unrolled_step, validation
from .trainer import EpochSampler, Trainer
from .windows import (check_given_fields, increment_scale, is_trajectory_dataset, load_trajectory_data,
                      varying_columns, windows)


@dataclass
class TrainResult:
    """What :meth:`Run.fit` returns.

    Attributes:
        run: the run folder.
        best, last: ``RUN/best.safetensors`` (lowest validation error) and ``RUN/last.safetensors``.
        metrics: ``best_val_<m>``, ``best_epoch``, ``test_<m>`` (of the best model; None
            without a test split), ``train_loss`` (last epoch), ``epochs``, ``seconds``, and
            ``validation`` = ``<m>``, the validation measure: ``rel_l2`` (relative L2 error) or,
            for particle simulators, ``acc_mse`` (MSE of the normalized one-step acceleration), for
            mesh movers ``ma_loss`` (the Monge–Ampère loss; no target exists).
        history: one dict per epoch, the rows of ``RUN/metrics.csv``.
    """

    run: Path
    best: Path
    last: Path
    metrics: dict
    history: list[dict]

    @property
    def test_rel_l2(self) -> float | None:
        return self.metrics.get("test_rel_l2")


class Run:
    """Trains a registered model on a dataset folder; :meth:`fit` runs it.

    Args:
        data: dataset folder with ``dataset.json`` (see :class:`~meshop.data.MeshDataset`).
        model: registry name (:func:`meshop.models.available`).
        inputs, targets: field names; default: the manifest's.
        epochs, batch_size: passes over the training split, meshes per batch.
        lr, weight_decay: AdamW's peak learning rate and decoupled weight decay.
        schedule: ``"onecycle"`` (warm up to ``lr``, anneal to ~0) or ``"cosine"`` (from ``lr``
            to 0), stepped every batch.
        graph: :class:`~meshop.graph.GraphSettings` (default kNN, k=16).
        out: run folder; default ``runs/<dataset>-<model>``.
        resume: continue from ``RUN/last.safetensors`` (same options required).
        init: fine-tune: start from the learned weights of this checkpoint (same model and
            hyper-parameters) instead of random ones; the statistics (normalization, motion) are
            this run's data's, the optimizer and schedule start afresh.
        seed: fixes the initial weights and the shuffling: same seed, same result.
        device: ``"cpu"``, ``"cuda"``, ...
        progress: show a progress bar (stderr) with the loss and the validation error.
        max_train: train on the first ``max_train`` training samples only.
        grad_clip: maximum gradient norm.
        save_every: write ``RUN/last.safetensors`` every this many epochs (and after the last);
            an interrupted run resumes from the last one written.
        unroll, noise, window_every: time-dependent models on trajectory datasets only: steps
            each training window is rolled out (:func:`~meshop.training.unrolled_step`; default 2;
            particle simulators :func:`~meshop.training.noisy_one_step`, default 1), the
            standard deviation of the noise on its initial state (normalized units; particles:
            m), and the frame spacing of the windows' start frames.
        prior: steady models of a problem whose PDE meshop knows (``heat3d``, ``poisson2d``): read
            the coarse voxel solve of that PDE as an input and learn its difference to the
            targets (:mod:`meshop.priors`).
        **model_overrides: hyper-parameters of the model (e.g. ``width=32``).

    A dataset whose manifest has a ``time`` entry (a folder of trajectories) trains a
    time-dependent model (``stepper``) with unrolled steps; any other, a steady model with the
    supervised step.
    """

    def __init__(self, data, model: str = "gno", inputs: list[str] | None = None,
                 targets: list[str] | None = None, epochs: int = 50, batch_size: int = 4,
                 lr: float = 1e-3, weight_decay: float = 1e-4, schedule: str = "onecycle",
                 graph: GraphSettings | None = None, out=None, resume: bool = False, seed: int = 0,
                 device: str = "cpu", progress: bool = True, max_train: int | None = None,
                 grad_clip: float = 1.0, save_every: int = 1, unroll: int | None = None, noise: float = 0.0,
                 window_every: int = 1, prior: bool = False, init=None, **model_overrides):
        check_options(model, epochs, batch_size, lr, weight_decay, schedule, grad_clip, device, save_every)
        check_arguments(data, out, init, seed, max_train, unroll, window_every, noise,
                        {"prior": prior, "resume": resume, "progress": progress})
        self.init = None if init is None else Path(init)
        self.unroll = None if unroll is None else int(unroll)     # None: the family's default, set by setup()
        self.noise, self.window_every, self.prior = float(noise), int(window_every), prior
        self.data_path = Path(data)
        self.model_name, self.model_overrides = model, model_overrides
        self.inputs, self.targets = field_names(inputs, "inputs"), field_names(targets, "targets")
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.schedule, self.grad_clip, self.seed, self.max_train = schedule, grad_clip, seed, max_train
        self.save_every = save_every
        self.graph = graph if graph is not None else GraphSettings()
        self.run = Path(out) if out is not None else Path("runs") / f"{self.data_path.name}-{model}"
        self.resume, self.device, self.progress = resume, torch.device(device), progress
        self.history: list[dict] = []
        self.val_metric = "rel_l2"      # what validation measures; particles.setup sets "acc_mse", mover.setup "ma_loss"
        self.best_val, self.best_epoch = math.inf, 0
        self.dist: Distributed | None = None   # joined in fit() when torchrun started this process

    @property
    def best_path(self) -> Path:
        return self.run / "best.safetensors"

    @property
    def last_path(self) -> Path:
        return self.run / "last.safetensors"

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        """Read the data, fit the field statistics, build the model, the graphs (once), the step
        function, the optimizer and schedule, and hand them to a :class:`Trainer`."""
        if self.init is not None:                     # a wrong checkpoint is named before the data is read
            check_init(self.init, self.model_name)
        moving = mover.is_mover(self.model_name)
        particle_data = not moving and is_particle_dataset(self.data_path)
        if self.unroll is None:                       # the family's default (steady models ignore it)
            self.unroll = 1 if particle_data else 2
        if moving:
            step, validate = mover.setup(self)
        elif particle_data:
            step, validate = particles.setup(self)
        elif is_trajectory_dataset(self.data_path):
            step, validate = self._setup_time()
        else:
            step, validate = self._setup_steady()
        if self.init is not None and not self.resume:     # a resume restores the run's own weights
            initialize(self)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps = self.epochs * math.ceil(len(self.graphs["train"]) / self.batch_size)
        if self.schedule == "onecycle":
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=self.lr, total_steps=steps)
        else:
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=steps)
        batch_size, sampler, trained = self.batch_size, EpochSampler(len(self.graphs["train"]), self.seed), self.model
        if self.dist is not None and moving:
            raise MeshError("the mesh mover (dmm) trains in one process; run it without torchrun.")
        if self.dist is not None:   # DDP: a shard per rank, gradients averaged, errors summed over ranks
            batch_size, sampler = self.dist.local_batch(self.batch_size), self.dist.sampler(len(sampler), self.seed)
            trained, step = self.dist.wrap(self.model, step)
            validate = self.dist.reduced(validate)
        train_loader = (mover.loader if moving else DataLoader)(self.graphs["train"], batch_size=batch_size,
                                                               sampler=sampler)
        self.validate = validate
        self.trainer = Trainer(trained, self.optimizer, step, train_loader, scheduler=self.scheduler,
                               val_loader=self.graphs["val"], validate=validate, grad_clip=self.grad_clip,
                               device=self.device, on_epoch_end=self._end_epoch, progress=self.progress)

    def _build_model(self, in_channels: int, out_channels: int, dim: int, features: dict | None = None, **fixed):
        """The model, built for the named node ``features`` (:func:`~meshop.graph.feature_layout`)."""
        torch.manual_seed(self.seed)
        try:
            model = models.get(self.model_name, in_channels, out_channels, dim, **fixed, **self.model_overrides,
                               features=features)
        except (ValueError, TypeError) as err:
            raise MeshError(str(err)) from None
        return model.to(self.device)

    def _setup_steady(self):
        """Meshes -> graphs; the supervised step; validation by relative L2."""
        cls = models.model_class(self.model_name)
        if cls.time_dependent:
            kind, example = (("moves particles", "mpm2d") if cls.particles else
                             ("steps a state in time", "heat3d-transient"))
            raise MeshError(f"model '{self.model_name}' {kind} and {self.data_path} holds steady samples; "
                            f"train it on a trajectory dataset (e.g. meshop generate {example}).")
        self.data: TrainingData = load_training_data(self.data_path, self.inputs, self.targets,
                                                     self.seed, self.max_train)
        self.fields = self.data.fields
        if self.prior:
            self.fields.prior = known_prior(self.data.card["problem"], self.fields, self.data_path)
        self.model = self._build_model(feature_count(self.fields, self.data.dim),
                                       self.fields.channels(self.fields.targets), self.data.dim,
                                       features=feature_layout(self.fields, self.data.dim))
        self.graphs = {split: [build_graph(mesh, self.fields, self.graph, prepare=self.model.prepare,
                                           mesh_graph=self.model.uses_mesh_graph)
                               for mesh in self.data.meshes[split]] for split in SPLITS}
        return supervised_step(self.fields), (
            lambda model, graphs: evaluate(model, graphs, self.fields, self.batch_size, self.device))

    def _setup_time(self):
        """Trajectories -> windows on each trajectory's graph; the unrolled step; validation by the
        same step without noise. The model (a :class:`~meshop.models.stepper.TimeStepper`) takes
        hyper-parameters from the dataset's ``time`` entry, its statistics from the training split
        and what it reads of each mesh and window through its hooks."""
        cls = models.model_class(self.model_name)
        if not cls.time_dependent:
            raise MeshError(f"{self.data_path} holds trajectories but model '{self.model_name}' is steady; "
                            "use --model stepper.")
        if cls.particles:
            raise MeshError(f"model '{self.model_name}' learns moving particles and {self.data_path} holds fields "
                            "on fixed nodes; use --model stepper.")
        self.data = load_trajectory_data(self.data_path, self.seed, self.max_train)
        self.fields, dim = self.data.fields, self.data.dim
        check_given_fields(self.data_path, self.fields, self.inputs, self.targets, self.model_name)
        self.model = self._build_model(feature_count(self.fields, dim), self.fields.channels(self.fields.targets),
                                       dim, features=feature_layout(self.fields, dim),
                                       varying_columns=varying_columns(self.fields, dim, self.data.varying),
                                       **cls.dataset_options(self.data.card["time"], self.model_overrides))
        targets = self.fields.targets
        self.model.set_statistics(increment_scale(self.data.trajectories["train"], self.fields),
                                  torch.as_tensor(np.concatenate([self.fields.mean[n] for n in targets])),
                                  torch.as_tensor(np.concatenate([self.fields.std[n] for n in targets])))
        self.graphs = {split: [window for traj in self.data.trajectories[split] for window in self._windows(traj)]
                       for split in SPLITS}
        for split in ("train", "val"):
            if not self.graphs[split]:
                frames = max(traj.n_frames for traj in self.data.trajectories[split])
                raise MeshError(f"{self.data_path}: the {split} trajectories are too short for unroll {self.unroll}: "
                                f"they need at least {self.unroll + 1} frames and the longest has {frames}; "
                                "generate longer series (--frames) or lower unroll (--model-option unroll=1).")
        return unrolled_step(self.unroll, self.noise), validation(unrolled_step(self.unroll), self.batch_size,
                                                                  self.device)

    def _windows(self, traj) -> list:
        """The training windows of one trajectory on its graph, built once with what the model
        reads of the mesh (:meth:`~meshop.models.stepper.TimeStepper.attach_mesh`), and what it
        reads of each window (:meth:`~meshop.models.stepper.TimeStepper.attach_window`)."""
        base = build_graph(traj.frame(0), self.fields, self.graph, with_targets=False, prepare=self.model.prepare,
                           mesh_graph=self.model.uses_mesh_graph)
        return windows(traj, self.model.attach_mesh(base, traj.mesh), self.fields, self.data.varying, self.unroll,
                       self.window_every, attach=self.model.attach_window)

    @property
    def dynamics(self) -> dict:
        """The checkpoint's dynamics section (time-dependent models; empty otherwise)."""
        if not self.model.time_dependent:
            return {}
        if getattr(self.data, "dynamics", None):
            return self.data.dynamics
        series = self.data.card["time"]
        return {"state": self.fields.targets, "varying_inputs": self.data.varying, "frame_dt": series.get("frame_dt"),
                "solver_dt": series.get("dt"), "stride": series.get("stride"), "history": 1, "unroll": self.unroll,
                "noise": self.noise, "integrator": self.model.integrator,
                "initial_defaults": series.get("initial_defaults", {}),
                "held_boundary": series.get("held_boundary", {}),
                "increment_scale": self.model.increment_scale.tolist()}

    @property
    def options(self) -> dict:
        """The run's settings as stored in checkpoints (JSON-ready)."""
        return {"model": self.model_name, "model_config": self.model.config,
                "inputs": self.fields.inputs, "targets": self.fields.targets, "graph": self.graph.to_dict(),
                "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "weight_decay": self.weight_decay, "schedule": self.schedule, "seed": self.seed,
                "max_train": self.max_train, "grad_clip": self.grad_clip, "unroll": self.unroll,
                "noise": self.noise, "window_every": self.window_every, "prior": self.prior,
                "init": None if self.init is None else str(self.init)}

    # ------------------------------------------------------------------ the loop
    def fit(self) -> TrainResult:
        """Train for the remaining epochs, then evaluate the best model on the test split."""
        if self.resume and not self.last_path.is_file():
            raise MeshError(f"{self.last_path}: nothing to resume (no last checkpoint in {self.run}).")
        if not self.resume and self.last_path.exists():
            raise MeshError(f"{self.run}: already holds a training run; pass --resume (resume=True in Python) "
                            f"to continue it, or choose another run folder (--out).")
        blocking = file_in_the_way(self.run)       # found now, not when the first checkpoint is written
        if blocking is not None:
            where = "" if blocking == self.run else f"{self.run}: "
            raise MeshError(f"{where}{blocking} is a file, not a folder; choose another run folder (--out).")
        check_environment(self.batch_size)
        self.dist = Distributed.from_env(self.device)
        if self.dist is None:
            return self._fit()
        self.device, self.progress = self.dist.device, self.progress and self.dist.is_main
        try:
            return self._fit()
        except KeyboardInterrupt:       # Ctrl-C, or SIGTERM from torchrun when another rank failed
            self.dist.abandon()
            raise
        except Exception as err:
            raise self.dist.explain(err) from None

    def _fit(self) -> TrainResult:
        self.setup()
        start = restore_run(self) if self.resume else 0
        self.trainer.history = self.history
        self.trainer.fit(self.epochs, start)
        return self._finish()

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (rank 0 of a DDP run, or the only one)."""
        return self.dist is None or self.dist.is_main

    def _end_epoch(self, row: dict) -> None:
        """Save the best and last checkpoints and metrics.csv after an epoch (``row`` is already
        in the history)."""
        val = f"val_{self.val_metric}"
        row[val] = row.pop("val")
        if self.dist is not None:   # the step's losses, averaged over the ranks' equal shards
            self.dist.mean_logs(row, [k for k in row if k not in ("epoch", "lr", "seconds", val)])
        if not math.isfinite(row[val]):
            raise MeshError(f"validation diverged in epoch {row['epoch']} (validation {self.val_metric} "
                            f"{row[val]}): the model's output on {self.data_path}'s validation split is not "
                            "finite, its inputs may lie far outside the training split's; train on more samples "
                            f"or with a lower learning rate (lr={self.lr:g}).")
        if row[val] < self.best_val:
            self.best_val, self.best_epoch = row[val], row["epoch"]
            save_run(self, self.best_path, self.model, {}, with_state=False)
        if row["epoch"] % self.save_every == 0 or row["epoch"] == self.epochs:
            save_run(self, self.last_path, self.model, {}, with_state=True)
        if self.writes:
            write_metrics(self.history, self.run / "metrics.csv", f"val_{self.val_metric}")

    def _finish(self) -> TrainResult:
        """Test the best model; write the final metrics into both checkpoints and the loss curve."""
        if self.dist is not None:
            self.dist.barrier()     # rank 0 has written best.safetensors
        best = load(self.best_path, device=str(self.device))
        test = self.validate(best.model, self.graphs["test"]) if self.graphs["test"] else None
        last = self.history[-1]
        metrics = {f"best_val_{self.val_metric}": self.best_val, "best_epoch": self.best_epoch,
                   f"test_{self.val_metric}": test, "validation": self.val_metric,
                   "train_loss": last["train_loss"], "epochs": last["epoch"], "seconds": last["seconds"]}
        save_run(self, self.best_path, best.model, metrics, with_state=False)
        save_run(self, self.last_path, self.model, metrics, with_state=True)
        if self.writes:
            write_loss_curve(self.run / "metrics.csv", self.run / "loss.png")
        return TrainResult(self.run, self.best_path, self.last_path, metrics, list(self.history))


@torch.no_grad()
def evaluate(model, graphs: list, fields, batch_size: int = 4, device="cpu") -> float:
    """Mean relative L2 error of ``model`` on ``graphs`` (decoded, physical fields)."""
    model.eval()
    total = 0.0
    for batch in DataLoader(graphs, batch_size=batch_size):
        batch = batch.to(device)
        total += relative_l2(decode(model(batch), batch, fields), batch.y, batch.batch).item() * batch.num_graphs
    return total / len(graphs)


def train(data, model: str = "gno", inputs: list[str] | None = None, targets: list[str] | None = None,
          epochs: int = 50, batch_size: int = 4, lr: float = 1e-3, weight_decay: float = 1e-4,
          schedule: str = "onecycle", graph: GraphSettings | None = None, out=None, resume: bool = False,
          seed: int = 0, device: str = "cpu", progress: bool = True, max_train: int | None = None,
          grad_clip: float = 1.0, save_every: int = 1, prior: bool = False, init=None,
          **model_overrides) -> TrainResult:
    """Train ``model`` on the dataset folder ``data``; the arguments are those of :class:`Run`.

    >>> result = meshop.train("data/poisson2d-small", model="gno", epochs=50, out="runs/p2d")
    >>> result.metrics["test_rel_l2"]
    """
    return Run(data, model, inputs=inputs, targets=targets, epochs=epochs, batch_size=batch_size, lr=lr,
                   weight_decay=weight_decay, schedule=schedule, graph=graph, out=out, resume=resume, seed=seed,
                   device=device, progress=progress, max_train=max_train, grad_clip=grad_clip,
                   save_every=save_every, prior=prior, init=init, **model_overrides).fit()
