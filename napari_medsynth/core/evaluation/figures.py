"""The quality figures of a synthesis against its ground truth: MAE, PSNR and SSIM on each
:class:`~napari_medsynth.core.choices.MetricScope`, with the one formatter every surface uses."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..choices import MetricScope

__all__ = ["CONVENTION", "Figures", "Quality"]

CONVENTION = ("standardized volumes (the ground truth's preprocessing mean and std); "
              "PSNR peak = range of the standardized ground truth")


@dataclass(frozen=True)
class Quality:
    """MAE, PSNR (dB) and SSIM on one scope (standardized units)."""

    mae: float
    psnr: float
    ssim: float

    def text(self) -> str:
        """``"MAE 0.1234  PSNR  27.54 dB  SSIM 0.9012"``."""
        return f"MAE {self.mae:.4f}  PSNR {self.psnr:6.2f} dB  SSIM {self.ssim:.4f}"


@dataclass(frozen=True)
class Figures:
    """The figures of one synthesis (or baseline) on every scope."""

    source: Quality
    head: Quality
    report: Quality

    @classmethod
    def from_dict(cls, scores: dict) -> Figures:
        """From ``{scope: {"mae": .., "psnr": .., "ssim": ..}}`` (a sidecar's or a layer's ``metrics``)."""
        return cls(**{scope.value: Quality(**{k: float(v) for k, v in scores[scope.value].items()})
                      for scope in MetricScope})

    def __getitem__(self, scope) -> Quality:
        return getattr(self, MetricScope(scope).value)

    def items(self):
        """``(MetricScope, Quality)`` pairs, in the order of :class:`MetricScope`."""
        return [(scope, self[scope]) for scope in MetricScope]

    def as_dict(self) -> dict:
        """``{scope: {"mae": .., "psnr": .., "ssim": ..}}``: what JSON, CSV and layer metadata hold."""
        return {scope.value: asdict(quality) for scope, quality in self.items()}

    def line(self) -> str:
        """One status line, the source grid first, with its units: ``"MAE 0.1234 SD, PSNR 27.54 dB,
        SSIM 0.9012; head only 22.39 dB (no air to get right); report grid 28.12 dB"`` (MAE in
        standard deviations of the ground truth, as every figure is on standardized volumes)."""
        whole = self.source
        return (f"MAE {whole.mae:.4f} SD, PSNR {whole.psnr:.2f} dB, SSIM {whole.ssim:.4f}; head only "
                f"{self.head.psnr:.2f} dB (no air to get right); report grid {self.report.psnr:.2f} dB")

    def table(self) -> list[str]:
        """One line per scope, as the command line prints them."""
        return [f"{scope.description:26s} {quality.text()}" for scope, quality in self.items()]
