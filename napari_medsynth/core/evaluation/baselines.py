"""The per-voxel intensity-mapping baseline, and the T2/PD pair statistics it calibrates.

A synthesis model is only interesting if it beats the best mapping that looks at one
voxel at a time: :class:`QuantileIntensityMapping` is that mapping (a binned
conditional mean of the target given the source intensity).
:func:`contrast_pair_statistics` summarises how hard a T2/PD slice pair is: how
correlated the two contrasts are, how far apart they are as images, and how much of
that gap the per-voxel mapping closes.
"""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_otsu

from ..errors import MedSynthError
from .metrics import psnr

__all__ = ["BASELINES", "QuantileIntensityMapping", "contrast_pair_statistics", "otsu_threshold"]

# The two baselines every synthesis is compared with, as the tables and metrics.json name them:
# the standardized source itself, and the per-voxel intensity mapping.
BASELINES = ("standardized source (baseline)", "intensity mapping (baseline)")


class QuantileIntensityMapping:
    """Map source intensities to target intensities through quantile bins.

    The bin edges are the source's quantiles, so every bin holds about the same number
    of voxels; each bin maps to the mean target of its voxels (the conditional mean,
    the least-squares per-voxel prediction). Bins that received no voxel take values
    interpolated from their neighbours.

    Parameters
    ----------
    bins : int
        Number of quantile bins, at least 1.
    """

    def __init__(self, bins: int = 256):
        if int(bins) < 1:
            raise MedSynthError(f"intensity mapping: bins must be at least 1, got {bins}")
        self.bins = int(bins)
        self.edges: np.ndarray | None = None
        self._sums = np.zeros(self.bins)
        self._counts = np.zeros(self.bins)

    def fit(self, source, target, mask=None) -> QuantileIntensityMapping:
        """Fit from scratch on ``source``/``target`` voxels (within ``mask`` if given)."""
        self.edges = None
        self._sums = np.zeros(self.bins)
        self._counts = np.zeros(self.bins)
        return self.partial_fit(source, target, mask)

    def partial_fit(self, source, target, mask=None) -> QuantileIntensityMapping:
        """Add voxels to the fit; the first call fixes the bin edges from its source."""
        source, target = _flat_pair(source, target, mask)
        if source.size == 0:
            raise MedSynthError("intensity mapping: no voxels to fit (empty image or mask)")
        if self.edges is None:
            self.edges = np.quantile(source, np.linspace(0.0, 1.0, self.bins + 1))
        index = self.bin_index(source)
        self._sums += np.bincount(index, weights=target, minlength=self.bins)
        self._counts += np.bincount(index, minlength=self.bins)
        return self

    @property
    def values(self) -> np.ndarray:
        """The target value of every bin (empty bins interpolated)."""
        if self.edges is None:
            raise ValueError("the mapping is not fitted")
        filled = self._counts > 0
        means = np.divide(self._sums, self._counts, out=np.zeros(self.bins), where=filled)
        positions = np.arange(self.bins)
        return np.interp(positions, positions[filled], means[filled])

    def predict(self, source) -> np.ndarray:
        """The mapped intensities, float32, in the shape of ``source``."""
        source = np.asarray(source, dtype=np.float64)
        return self.values[self.bin_index(source)].astype(np.float32)

    def to_dict(self) -> dict:
        """Plain lists and numbers (JSON- and checkpoint-safe)."""
        if self.edges is None:
            raise ValueError("the mapping is not fitted")
        return {
            "bins": self.bins,
            "edges": self.edges.tolist(),
            "sums": self._sums.tolist(),
            "counts": self._counts.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict) -> QuantileIntensityMapping:
        """Rebuild a mapping written by :meth:`to_dict`."""
        try:
            mapping = cls(state["bins"])
            mapping.edges = np.asarray(state["edges"], dtype=np.float64)
            mapping._sums = np.asarray(state["sums"], dtype=np.float64)
            mapping._counts = np.asarray(state["counts"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as error:
            raise MedSynthError(f"intensity mapping: unreadable state ({error!r})") from error
        shapes = (mapping.edges.shape, mapping._sums.shape, mapping._counts.shape)
        if shapes != ((mapping.bins + 1,), (mapping.bins,), (mapping.bins,)):
            raise MedSynthError(
                f"intensity mapping: state of {mapping.bins} bins has shapes {shapes}"
            )
        return mapping

    def bin_index(self, source: np.ndarray) -> np.ndarray:
        """The bin of every source intensity (an integer array in the shape of ``source``)."""
        return np.searchsorted(self.edges[1:-1], source, side="right")


def otsu_threshold(image, bins: int = 256) -> float:
    """Otsu's threshold, the level that maximises the between-class variance
    (``skimage.filters.threshold_otsu`` of the values as float64, ``bins`` histogram bins)."""
    return float(threshold_otsu(np.asarray(image, dtype=np.float64).ravel(), nbins=bins))


def contrast_pair_statistics(t2_slice, pd_slice) -> dict:
    """How alike a T2 and a PD slice are, and how far a per-voxel mapping gets.

    Each slice is standardised over the whole slice (zero mean, unit standard
    deviation). PSNRs are over the whole slice with the peak set to the standardised
    PD slice's range (max - min).

    Returns
    -------
    dict
        ``correlation``: Pearson correlation of T2 and PD over the head, the voxels
        where PD exceeds its Otsu threshold (:func:`otsu_threshold`); ``psnr_identity``:
        PSNR (dB) of the standardised T2 taken as the standardised PD;
        ``psnr_mapping``: PSNR (dB) of a 256-bin :class:`QuantileIntensityMapping`
        from T2 to PD fitted on this same slice; ``head_fraction``: the share of the
        slice in the head mask.
    """
    t2 = _standardise(t2_slice)
    pd = _standardise(pd_slice)
    if t2.shape != pd.shape or t2.ndim != 2:
        raise MedSynthError(
            f"contrast statistics: need two 2D slices of one shape, got {t2.shape} and {pd.shape}"
        )
    head = pd > otsu_threshold(pd)
    mapped = QuantileIntensityMapping(256).fit(t2, pd).predict(t2)
    return {
        "correlation": float(np.corrcoef(t2[head], pd[head])[0, 1]),
        "psnr_identity": psnr(t2, pd),
        "psnr_mapping": psnr(mapped, pd),
        "head_fraction": float(head.mean()),
    }


def _standardise(image) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    std = image.std()
    if not std > 0:
        raise MedSynthError("contrast statistics: a constant slice has no contrast to compare")
    return (image - image.mean()) / std


def _flat_pair(source, target, mask) -> tuple[np.ndarray, np.ndarray]:
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape:
        raise MedSynthError(
            f"intensity mapping: source {source.shape} and target {target.shape} differ in shape"
        )
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != source.shape:
            raise MedSynthError(
                f"intensity mapping: mask {mask.shape} does not fit the images {source.shape}"
            )
        return source[mask], target[mask]
    return source.ravel(), target.ravel()
