"""The training loop: alternating D/G updates, validation, checkpoints, resume, torchrun.

One process trains on the CPU or one GPU. Under ``torchrun`` (``WORLD_SIZE > 1``) every
process trains a DistributedDataParallel replica on its share of the patches (NCCL on
GPUs, Gloo on CPUs); rank 0 validates, writes the run folder and the checkpoints.
"""

from __future__ import annotations

import csv
import gc
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, Subset

from napari_medsynth.core.errors import MedSynthError
from napari_medsynth.core.evaluation.metrics import quality
from napari_medsynth.core.files.atomic import atomic_output, make_folder, write_failure
from napari_medsynth.core.networks.checkpoint import (
    TrainingRecord,
    checkpoint_payload,
    load_checkpoint,
    read_checkpoint,
    write_atomically,
)
from napari_medsynth.core.networks.devices import TorchrunRank, resolve_device
from napari_medsynth.core.networks.fftconv import set_conv_engine
from napari_medsynth.core.networks.models import Discriminator, Generator
from napari_medsynth.core.preprocessing.preprocess import KEEP_EVERY
from napari_medsynth.core.synthesis.reconstruct import reconstruct_volume
from napari_medsynth.core.training.config import TrainConfig
from napari_medsynth.core.training.events import (
    EVENTS_FILE,
    DoneEvent,
    EventLog,
    StartEvent,
    StepEvent,
    StoppedEvent,
    TrainingEvent,
    ValidationEvent,
)

from .data import (
    PatchDataset,
    PreprocessedCache,
    ResumableSampler,
    SubjectSplit,
    VolumePair,
    find_pairs_or_fail,
    load_volume_pairs,
    randomized_acquisitions,
)
from .lock import RunLock
from .losses import IN_PLANE_DIMS, VOLUME_DIMS, adversarial_loss, gradient_difference_loss, reconstruction_loss
from .randomize import AcquisitionRandomization

__all__ = ["VARIANT_LOSSES", "Trainer", "TrainingStopped", "TrainingSummary"]

# variant: (reconstruction norm, adversarial term, gradient-difference term)
VARIANT_LOSSES = {
    "G1": ("l2", False, False), "G2": ("l2", True, False), "G3": ("l2", True, True), "G4": ("l1", True, True),
}
# Training patches (one seeded choice, the same every epoch) over which each epoch's BatchNorm statistics are
# re-estimated before validation: the running averages training leaves behind follow its last few batches
BATCHNORM_PATCHES = 448
# With --randomize: randomized acquisitions of each validation subject that validation scores beside its own
VALIDATION_ACQUISITIONS = 2
LOSS_NAMES = ("loss_g", "loss_d", "loss_rec", "loss_adv", "loss_gdl")
METRIC_COLUMNS = ("epoch", *LOSS_NAMES, "val_mae", "val_mae_std", "val_psnr", "val_psnr_std",
                  "val_ssim", "val_ssim_std", "best", "seconds")


class TrainingStopped(Exception):
    """Training was asked to stop; ``last.pt`` holds where it was."""


@dataclass(frozen=True)
class TrainingSummary:
    """What a finished run says (its ``done`` event's fields): the best epoch, its validation PSNR (dB),
    the epochs trained."""

    best_epoch: int
    best_psnr: float
    epochs: int


@dataclass(frozen=True)
class _Distributed(TorchrunRank):
    """This rank, and what the trainer's ranks agree on."""

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on one."""
        if not self.active:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)


@dataclass
class _Progress:
    epoch: int = 0  # epochs completed
    step: int = 0  # steps completed within the current epoch
    best_psnr: float = -math.inf
    best_epoch: int = 0
    sums: dict = field(default_factory=lambda: dict.fromkeys(LOSS_NAMES, 0.0))


class StepTiming:
    """Where an epoch's time goes: waiting for the loader, the discriminator's update and the
    generator's (the forward pass that feeds D counts as G's). Times end at a loss read back
    to the host, so they include the device's work."""

    def __init__(self):
        self.seconds = {"loader": 0.0, "discriminator": 0.0, "generator": 0.0}
        self.patches = 0
        self._mark = time.perf_counter()

    def wait_for(self, batches):
        """The next batch, or None at the end; the wait counts as the loader's time."""
        started = time.perf_counter()
        batch = next(batches, None)
        self.seconds["loader"] += time.perf_counter() - started
        return batch

    def start(self, patches: int) -> None:
        self.patches += patches
        self._mark = time.perf_counter()

    def discriminator_done(self) -> None:
        now = time.perf_counter()
        self.seconds["discriminator"] += now - self._mark
        self._mark = now

    def step_done(self) -> None:
        self.seconds["generator"] += time.perf_counter() - self._mark

    def summary(self) -> dict:
        """Patches per second of the whole epoch and of each part, and the loader's share of the time."""
        total = sum(self.seconds.values())
        rates = {f"{part}_patches_per_s": self.patches / spent for part, spent in self.seconds.items()
                 if part != "loader" and spent > 0}
        return {"patches": self.patches, "patches_per_s": self.patches / total if total else 0.0, **rates,
                "loader_wait_fraction": self.seconds["loader"] / total if total else 0.0}


class Trainer:
    """Trains one generator variant; see :class:`TrainConfig`.

    Parameters
    ----------
    config : TrainConfig
    resume : bool
        Continue the run in ``config.out`` from its ``last.pt`` (its stored settings
        win, except ``epochs``, ``device`` and ``workers``).
    on_event : callable, optional
        Receives each :mod:`~napari_medsynth.core.training.events` event on rank 0; the same events
        (steps every ``log_every``) are appended to ``events.jsonl``.
    """

    def __init__(self, config: TrainConfig, resume: bool = False,
                 on_event: Callable[[TrainingEvent], None] | None = None):
        self.run_dir = Path(config.out)
        self.resume = resume
        self.on_event = on_event
        self.timing = StepTiming()
        self.stop_requested = threading.Event()
        self.dist = _Distributed.from_env()
        self.progress = _Progress()
        self._resume_state = None
        self._lock = RunLock(self.run_dir)
        if resume and not (self.run_dir / "last.pt").is_file():
            # stopped (or killed) before its first save: nothing to continue, so start afresh
            warnings.warn(f"{self.run_dir}: nothing was saved yet (no last.pt): starting afresh", stacklevel=2)
            resume = self.resume = False
        if resume:
            last = self.run_dir / "last.pt"
            self._resume_state = read_checkpoint(last)
            stored = TrainConfig(**self._resume_state["training"]["config"])
            config = TrainConfig(**{**asdict(stored), "epochs": config.epochs, "device": config.device,
                                    "workers": config.workers, "data": config.data or stored.data})
        elif (self.run_dir / "last.pt").exists():
            raise MedSynthError(f"{self.run_dir} already holds a run (last.pt): pass --resume to continue it, "
                                "or choose another --out")
        self.config = config
        # read before any set-up, so that a wrong --randomize-only fails at once, not after the data load
        self.randomization = AcquisitionRandomization.only(config.randomize_only) if config.randomize else None

    # ----------------------------------------------------------------- set-up
    def setup(self) -> None:
        """Make the run folder, the split, the cache, the models, the optimizers and the loader
        (and restore a resumed run); :meth:`run` calls it first."""
        self._setup_device()
        if self.dist.main:
            make_folder(self.run_dir)
            self._lock.acquire()  # one trainer per run folder
            if self._resume_state is None:  # the records of a run that saved nothing belong to no run
                for name in (EVENTS_FILE, "metrics.csv", "val_subjects.csv"):
                    (self.run_dir / name).unlink(missing_ok=True)
            else:
                self._trim_records(self._resume_state["training"])
        self._load_data()
        self._build_models()
        self._build_optimizers()
        self._build_loader()
        if self._resume_state is not None:
            self._restore(self._resume_state)
        self._events = EventLog(self.run_dir)
        self._writer = _open_tensorboard(self.run_dir) if self.dist.main else None

    def _trim_records(self, saved: dict) -> None:
        """Cut the run's records back to what ``last.pt`` saw: a run killed after its last save
        leaves events, rows (or half a row) that the resumed run would otherwise write twice."""
        events = self.run_dir / EVENTS_FILE
        if "events_bytes" in saved and events.is_file() and events.stat().st_size > saved["events_bytes"]:
            with open(events, "r+b") as handle:
                handle.truncate(saved["events_bytes"])
        for name in ("metrics.csv", "val_subjects.csv"):
            path = self.run_dir / name
            if not path.is_file():
                continue
            lines = path.read_text().splitlines(keepends=True)
            complete = [line for line in lines if line.endswith("\n")]  # a row cut short has no newline
            reader = csv.DictReader(complete)
            columns = reader.fieldnames or []
            rows = [r for r in reader if None not in r.values() and r["epoch"].isdigit()
                    and int(r["epoch"]) <= saved["epoch"]]
            with atomic_output(path) as tmp_name, open(tmp_name, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)

    def _setup_device(self) -> None:
        """The device (this rank's GPU under torchrun), the process group, mixed precision."""
        device = resolve_device(self.config.device)
        if self.dist.active:
            if device.type == "cuda":
                device = torch.device("cuda", self.dist.local_rank)
                torch.cuda.set_device(device)
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            if device.type == "cpu":
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
        self.device = device
        self.amp_dtype = None
        if self.config.amp and device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    def _load_data(self) -> None:
        """The subject split (made once, then read from split.json) and the preprocessed volumes."""
        config = self.config
        pairs = find_pairs_or_fail(config.data)
        split_path = self.run_dir / "split.json"
        if split_path.is_file():
            split = SubjectSplit.load(split_path)
        else:
            train_fraction = 1.0 - config.val_fraction - config.test_fraction
            split = SubjectSplit.make(sorted({p.participant for p in pairs}),
                                      (train_fraction, config.val_fraction, config.test_fraction), config.seed)
            if self.dist.main:
                split.save(split_path)
        by_subject: dict[str, list] = {}
        for pair in pairs:
            by_subject.setdefault(pair.participant, []).append(pair)
        missing = [s for s in split.train + split.validation if s not in by_subject]
        if missing:
            raise MedSynthError(f"{split_path}: subjects {', '.join(missing[:3])} are not in {config.data}")
        cache = PreprocessedCache(config.cache or self.run_dir / "cache", "native" if config.all_stacks else "report")
        if self.dist.main:  # rank 0 fills the cache; the others then only read it
            from napari_medsynth.core.console import progress_bar

            with progress_bar("preprocessing", unit="pair") as progress:
                load_volume_pairs([p for s in split.train + split.validation for p in by_subject[s]],
                                  config.direction, cache, progress)
        self.dist.barrier()
        train = [p for s in split.train for p in by_subject[s]]
        validation = [p for s in split.validation for p in by_subject[s]]
        self.train_pairs = load_volume_pairs(train, config.direction, cache)
        self.val_pairs = load_volume_pairs(validation, config.direction, cache)
        self.val_acquisitions: list[VolumePair] = []
        if config.randomize:
            self._randomize_acquisitions(train, validation, cache)
        self.split = split
        self.target_intensity = {
            "mean": float(np.mean([p.target.standardization.mean for p in self.train_pairs])),
            "std": float(np.mean([p.target.standardization.std for p in self.train_pairs])),
        }

    def _randomize_acquisitions(self, train: list, validation: list, cache: PreprocessedCache) -> None:
        """Each training subject's randomized acquisitions, and :data:`VALIDATION_ACQUISITIONS` of each
        validation subject as validation pairs of their own, so the best epoch is the one that holds
        up on other acquisitions too, not only on the phantom's own (rank 0 makes them, then all read)."""
        config = self.config

        def draw(pairs, seed, count, progress=None):
            return randomized_acquisitions(pairs, config.direction, cache, self.randomization, seed, count, progress)

        if self.dist.main:
            from napari_medsynth.core.console import progress_bar

            with progress_bar("randomizing the acquisitions", unit="subject") as progress:
                draw(train, config.seed, config.randomize_variants, progress)
                draw(validation, [config.seed, 1], VALIDATION_ACQUISITIONS)
        self.dist.barrier()
        self.train_pairs = [replace(pair, variants=variants) for pair, variants
                            in zip(self.train_pairs, draw(train, config.seed, config.randomize_variants))]
        self.val_acquisitions = [
            VolumePair(f"{pair.subject} (acquisition {number})", *variant)
            for pair, variants in zip(self.val_pairs, draw(validation, [config.seed, 1], VALIDATION_ACQUISITIONS))
            for number, variant in enumerate(variants, start=1)]

    def _build_models(self) -> None:
        """The generator (from ``init``'s weights, if given) and, for G2-G4, the discriminator,
        on the device in channels-last layout (DistributedDataParallel under torchrun)."""
        config = self.config
        torch.manual_seed(config.seed)
        generator = Generator(residual=config.residual, width=config.width)
        starting = config.init and self._resume_state is None
        if starting:
            initial, info = load_checkpoint(config.init, direction=config.direction)
            if (info.width, info.residual) != (generator.width, generator.residual):
                raise MedSynthError(
                    f"{Path(config.init).name}: a width-{info.width:g} "
                    f"{'residual ' if info.residual else ''}generator; "
                    f"this run asks for width {config.width:g}{' with --residual' if config.residual else ''}"
                )
            generator.load_state_dict(initial.state_dict())
        self.norm, self.adversarial, self.gdl = VARIANT_LOSSES[config.variant]
        discriminator = Discriminator(width=config.discriminator_width) if self.adversarial else None
        if starting and discriminator is not None:
            stored = read_checkpoint(config.init).get("discriminator")
            if stored is not None:
                try:
                    discriminator.load_state_dict(stored)
                except RuntimeError:
                    raise MedSynthError(
                        f"{Path(config.init).name}: its discriminator is not the width-{config.discriminator_width:g} "
                        "one this run asks for; give --discriminator-width as its run did") from None
        layout = torch.channels_last_3d
        self.generator = set_conv_engine(generator, config.engine).to(self.device, memory_format=layout)
        self.discriminator = discriminator.to(self.device, memory_format=layout) if discriminator else None
        self.g_step_model = self.generator
        self.d_step_model = self.discriminator
        if self.dist.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_step_model = DistributedDataParallel(self.generator, device_ids=ids)
            if self.discriminator is not None:
                self.d_step_model = DistributedDataParallel(self.discriminator, device_ids=ids)

    def _build_optimizers(self) -> None:
        """Adam for each model, the report's betas."""
        betas = (0.5, 0.999)
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=self.config.lr, betas=betas)
        self.optimizer_d = (torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr, betas=betas)
                            if self.discriminator is not None else None)

    def _build_loader(self) -> None:
        """Random training patches, this rank's share, resumable within an epoch; and the fixed ones that
        re-estimate BatchNorm statistics."""
        config = self.config
        dataset = PatchDataset(self.train_pairs, stacks=self._stacks, seed=config.seed)
        self.sampler = ResumableSampler(dataset, self.dist.world_size, self.dist.rank, config.seed)
        self.loader = DataLoader(dataset, batch_size=config.batch_size, sampler=self.sampler,
                                 num_workers=config.workers, pin_memory=self.device.type == "cuda",
                                 persistent_workers=False, worker_init_fn=_leave_stop_signals_to_the_trainer)
        self.steps_per_epoch = math.ceil(len(self.sampler) / config.batch_size)
        chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(config.seed))
        self.statistics_loader = DataLoader(Subset(dataset, chosen[:BATCHNORM_PATCHES].tolist()),
                                            batch_size=config.batch_size)

    # --------------------------------------------------------------- training
    def run(self) -> TrainingSummary:
        """Train to ``config.epochs``; return the best epoch and its validation PSNR.

        Raises
        ------
        TrainingStopped
            ``stop_requested`` was set; ``last.pt`` was saved first.
        MedSynthError
            Bad data, a NaN loss, or CUDA out of memory.
        """
        try:
            self.setup()
            return self._train()
        finally:
            self._lock.release()
            if self.dist.active and dist.is_initialized():
                # DDP wrappers (reference cycles) hold the process group: free them first, or gloo's
                # threads outlive destroy_process_group and abort the process at interpreter exit.
                self.g_step_model = self.d_step_model = None
                gc.collect()
                dist.destroy_process_group()

    def _train(self) -> dict:
        config = self.config
        self._emit(StartEvent(epochs=config.epochs, steps=self.steps_per_epoch, epoch=self.progress.epoch,
                              train_subjects=len(self.train_pairs), validation_subjects=len(self.val_pairs),
                              world_size=self.dist.world_size, device=str(self.device), variant=config.variant,
                              direction=config.direction))
        while self.progress.epoch < config.epochs:
            started = time.time()
            epoch = self.progress.epoch
            self.sampler.set_epoch(epoch)
            self.sampler.skip = self.progress.step * config.batch_size
            self.generator.train()
            self.timing = StepTiming()
            batches = iter(self.loader)
            while (batch := self.timing.wait_for(batches)) is not None:
                losses = self.step(*batch)
                self.progress.step += 1
                for name, value in losses.items():
                    self.progress.sums[name] += value
                self._emit(StepEvent(epoch=epoch + 1, step=self.progress.step, steps=self.steps_per_epoch, **losses))
                if self.dist.any(self.stop_requested.is_set(), self.device):
                    self._emit(StoppedEvent(epoch=epoch + 1, step=self.progress.step))
                    self._save_last()
                    raise TrainingStopped(f"stopped at epoch {epoch + 1}, step {self.progress.step} of "
                                          f"{self.steps_per_epoch}; last.pt saved: continue with --resume")
            self._refresh_batchnorm_statistics()
            means = {k: v / max(1, self.progress.step) for k, v in self.progress.sums.items()}
            self.progress.epoch, self.progress.step = epoch + 1, 0
            self.progress.sums = dict.fromkeys(LOSS_NAMES, 0.0)
            stopping = self.dist.any(self.stop_requested.is_set(), self.device) and self.progress.epoch < config.epochs
            if self.dist.main:
                self._end_epoch(means, time.time() - started, stopping)
            self.dist.barrier()
            if stopping:
                raise TrainingStopped(f"stopped after epoch {self.progress.epoch}; "
                                      "last.pt saved: continue with --resume")
        summary = TrainingSummary(best_epoch=self.progress.best_epoch, best_psnr=self.progress.best_psnr,
                                  epochs=self.progress.epoch)
        self._emit(DoneEvent(**asdict(summary)))
        return summary

    def step(self, source: torch.Tensor, target: torch.Tensor) -> dict:
        """One training step on a batch: the discriminator's update (G2-G4), then the generator's;
        returns the step's losses."""
        config = self.config
        layout = torch.channels_last_3d
        source = source.to(self.device, non_blocking=True).contiguous(memory_format=layout)
        target = target.to(self.device, non_blocking=True).contiguous(memory_format=layout)
        losses = dict.fromkeys(LOSS_NAMES, 0.0)
        self._set_learning_rate()
        try:
            self.timing.start(len(source))
            with self._autocast():
                fake = self.g_step_model(source)
            loss_adv = fake.new_zeros(())
            if self.adversarial:
                half = max(1, len(source) // 2)
                with self._autocast():
                    real_logits = self.d_step_model(source[:half], target[:half])
                    fake_logits = self.d_step_model(source[half:], fake[half:].detach())
                    loss_d = adversarial_loss(real_logits.float(), True) + adversarial_loss(fake_logits.float(), False)
                self._check_finite(loss_d, "discriminator")
                self.optimizer_d.zero_grad(set_to_none=True)
                self.scaler.scale(loss_d).backward()
                self.scaler.step(self.optimizer_d)
                losses["loss_d"] = float(loss_d.detach())  # waits for the device: D's time ends here
                self.timing.discriminator_done()
                with self._autocast():  # the unwrapped D: its gradients here are discarded
                    loss_adv = adversarial_loss(self.discriminator(source, fake).float(), True)
            fake = fake.float()
            loss_rec = reconstruction_loss(fake, target, self.norm, config.reduction)
            loss_gdl = (gradient_difference_loss(fake, target, VOLUME_DIMS if config.gdl_3d else IN_PLANE_DIMS,
                                                 config.gdl_exponent, config.reduction)
                        if self.gdl else fake.new_zeros(()))
            loss_g = (config.reconstruction_weight * loss_rec + config.adversarial_weight * loss_adv
                      + config.gdl_weight * loss_gdl)
            self._check_finite(loss_g, "generator")
            self.optimizer_g.zero_grad(set_to_none=True)
            self.scaler.scale(loss_g).backward()
            self.scaler.step(self.optimizer_g)
            self.scaler.update()
        except torch.cuda.OutOfMemoryError as error:
            raise MedSynthError(
                f"CUDA out of memory with batch size {config.batch_size} at width {config.width:g}: "
                f"try --batch-size {max(1, config.batch_size // 2)} or a smaller --width"
            ) from error
        losses.update(loss_g=float(loss_g.detach()), loss_rec=float(loss_rec.detach()),
                      loss_adv=float(loss_adv.detach()), loss_gdl=float(loss_gdl.detach()))
        self.timing.step_done()
        return losses

    def _refresh_batchnorm_statistics(self) -> None:
        """The generator's BatchNorm statistics, estimated afresh over ``BATCHNORM_PATCHES`` training patches.

        Training leaves them a moving average (momentum 0.1) of its last few batches, so what a
        checkpoint predicted hung on which patches came last: on the demo's T2->PD G4 a 0.4 dB swing
        in held-out PSNR between epochs, which the choice of the best epoch then followed. Every
        rank uses the same patches, so all keep the same statistics.
        """
        update_bn(self.statistics_loader, self.generator, self.device)

    def _set_learning_rate(self) -> None:
        """Both optimizers' rate at this step: ``--lr``, or with ``--lr-schedule cosine`` a half
        cosine from ``--lr`` at the run's first step to 1/100 of it at its last. A function of the
        step alone, so that a resumed run follows the uninterrupted one's rates."""
        config = self.config
        rate = config.lr
        if config.lr_schedule == "cosine":
            done = self.progress.epoch * self.steps_per_epoch + self.progress.step
            fraction = done / max(1, config.epochs * self.steps_per_epoch - 1)
            rate = config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction))))
        for optimizer in (self.optimizer_g, self.optimizer_d):
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group["lr"] = rate

    def _check_finite(self, loss: torch.Tensor, which: str) -> None:
        if not torch.isfinite(loss):
            raise MedSynthError(
                f"the {which} loss became {float(loss)} at epoch {self.progress.epoch + 1}, step "
                f"{self.progress.step + 1}; this epoch was not saved: lower --lr, or --resume from last.pt"
            )

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    # ------------------------------------------------------ validation, saving
    def _end_epoch(self, means: dict, seconds: float, stopping: bool) -> None:
        """Validate, then write the epoch's records and last.pt, last: a run killed before last.pt
        resumes from the epoch before, and :meth:`_trim_records` drops what this one wrote."""
        epoch = self.progress.epoch
        scores = self.validate()
        summary = {name: (float(np.mean(values)), float(np.std(values))) for name, values in scores.items()
                   if name != "subject"}
        is_best = summary["psnr"][0] > self.progress.best_psnr
        if is_best:
            self.progress.best_psnr, self.progress.best_epoch = summary["psnr"][0], epoch
            self._save_best(summary)
        row = {"epoch": epoch, **{k: f"{v:.6g}" for k, v in means.items()},
               "val_mae": summary["mae"][0], "val_mae_std": summary["mae"][1],
               "val_psnr": summary["psnr"][0], "val_psnr_std": summary["psnr"][1],
               "val_ssim": summary["ssim"][0], "val_ssim_std": summary["ssim"][1],
               "best": int(is_best), "seconds": round(seconds, 2)}
        _append_csv(self.run_dir / "metrics.csv", METRIC_COLUMNS, [row])
        _append_csv(self.run_dir / "val_subjects.csv", ("epoch", "subject", "mae", "psnr", "ssim"),
                    [{"epoch": epoch, "subject": s, "mae": m, "psnr": p, "ssim": q}
                     for s, m, p, q in zip(scores["subject"], scores["mae"], scores["psnr"], scores["ssim"])])
        _plot_curves(self.run_dir / "metrics.csv", self.run_dir / "curves.png")
        if self._writer is not None:
            for name, value in {**means, "val_mae": summary["mae"][0], "val_psnr": summary["psnr"][0],
                                "val_ssim": summary["ssim"][0]}.items():
                self._writer.add_scalar(name, value, epoch)
            self._writer.flush()
        self._emit(ValidationEvent(
            epoch=epoch, **{k: v[0] for k, v in summary.items()}, **{f"{k}_std": v[1] for k, v in summary.items()},
            best=is_best, best_epoch=self.progress.best_epoch, seconds=seconds, losses=means,
            throughput=self.timing.summary()))
        if stopping:
            self._emit(StoppedEvent(epoch=epoch, step=0))
        self._save_last()

    def validate(self) -> dict:
        """Whole-volume MAE, PSNR and SSIM of each validation subject (standardized volumes), and of
        its randomized acquisitions with ``--randomize``."""
        scores = {"subject": [], "mae": [], "psnr": [], "ssim": []}
        for pair in self.val_pairs + self.val_acquisitions:
            source, target = pair.source.load(mmap=False), pair.target.load(mmap=False)
            # reconstruct_volume runs an eval-mode copy: the training module keeps its mode and device
            prediction = reconstruct_volume(self.generator, source, stride=self.config.val_stride, device=self.device,
                                            stacks=self._stacks, engine=self.config.engine)
            scores["subject"].append(pair.subject)
            for metric, value in quality(prediction, target).items():
                scores[metric].append(value)
        return scores

    @property
    def _stacks(self) -> int:
        """Interleaved slice stacks per cached volume: 3 with ``all_stacks`` (the native grid), else 1."""
        return KEEP_EVERY if self.config.all_stacks else 1

    def _provenance(self, **figures) -> dict:
        """The checkpoint's :class:`TrainingRecord` (with this epoch's ``figures``), as its dict."""
        return TrainingRecord(data_set=str(self.config.data), train_subjects=len(self.train_pairs),
                              target_intensity=self.target_intensity, init=self.config.init,
                              command=" ".join(sys.argv), torch=torch.__version__, **figures).as_dict()

    def _save_best(self, summary: dict) -> None:
        payload = checkpoint_payload(
            self.generator, direction=self.config.direction, variant=self.config.variant,
            **self._provenance(epochs=self.progress.epoch, best_epoch=self.progress.epoch,
                               val_mae=summary["mae"][0], val_psnr=summary["psnr"][0], val_ssim=summary["ssim"][0]),
        )
        if self.discriminator is not None:
            payload["discriminator"] = {k: v.detach().cpu().clone() for k, v in self.discriminator.state_dict().items()}
        write_atomically(self.run_dir / "best.pt", payload)

    def _save_last(self) -> None:
        if not self.dist.main:
            return
        progress = self.progress
        payload = checkpoint_payload(
            self.generator, direction=self.config.direction, variant=self.config.variant,
            **self._provenance(epochs=progress.epoch, best_epoch=progress.best_epoch, val_psnr=progress.best_psnr),
        )
        payload["training"] = {
            "config": asdict(self.config),
            "epoch": progress.epoch,
            "step": progress.step,
            "best_psnr": progress.best_psnr,
            "best_epoch": progress.best_epoch,
            "sums": dict(progress.sums),
            "optimizer_g": self.optimizer_g.state_dict(),
            "discriminator": self.discriminator.state_dict() if self.discriminator is not None else None,
            "optimizer_d": self.optimizer_d.state_dict() if self.optimizer_d is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "events_bytes": self._events.sync(),  # on disk before last.pt says they were written
        }
        write_atomically(self.run_dir / "last.pt", payload)

    def _restore(self, payload: dict) -> None:
        training = payload["training"]
        self.generator.load_state_dict(payload["generator"])
        self.optimizer_g.load_state_dict(training["optimizer_g"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(training["discriminator"])
            self.optimizer_d.load_state_dict(training["optimizer_d"])
        if training["scaler"]:
            self.scaler.load_state_dict(training["scaler"])
        self.progress = _Progress(epoch=training["epoch"], step=training["step"], best_psnr=training["best_psnr"],
                                  best_epoch=training["best_epoch"], sums=dict(training["sums"]))
        _set_rng_state(training["rng"])

    def _emit(self, event: TrainingEvent) -> None:
        """Rank 0: log ``event`` to events.jsonl (every ``log_every``-th step) and pass it to ``on_event``."""
        if not self.dist.main:
            return
        if not isinstance(event, StepEvent) or event.step % self.config.log_every == 0 or event.step == event.steps:
            self._events.append(event)
        if self.on_event is not None:
            self.on_event(event)


def _append_csv(path: Path, columns, rows) -> None:
    new = not path.exists()
    try:
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            if new:
                writer.writeheader()
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before last.pt, written next, says the epoch is done
    except OSError as error:
        raise MedSynthError(write_failure(path, error)) from error


def _plot_curves(metrics_csv: Path, png: Path) -> None:
    """Validation MAE and PSNR per epoch, as a PNG beside metrics.csv (no pyplot: no global backend)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with open(metrics_csv) as handle:
        rows = list(csv.DictReader(handle))
    epochs = [int(r["epoch"]) for r in rows]
    figure = Figure(figsize=(9, 3.2), dpi=100, layout="tight")
    axes = figure.subplots(1, 2)
    for axis, key, label in ((axes[0], "val_mae", "validation MAE"), (axes[1], "val_psnr", "validation PSNR (dB)")):
        mean = np.array([float(r[key]) for r in rows])
        std = np.array([float(r[f"{key}_std"]) for r in rows])
        axis.plot(epochs, mean, marker="o")
        axis.fill_between(epochs, mean - std, mean + std, alpha=0.2)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(label)
        axis.grid(alpha=0.3)
    with atomic_output(png) as tmp_name, open(tmp_name, "wb") as handle:
        figure.savefig(handle, format="png")


def _open_tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _leave_stop_signals_to_the_trainer(worker_id: int) -> None:
    """In each DataLoader worker: ignore Ctrl-C and SIGTERM sent to the whole process group, so that
    the trainer finishes its step and saves (the loader stops the workers as it closes) instead of
    failing on a worker killed mid-batch."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _rng_state() -> dict:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
