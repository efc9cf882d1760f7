"""What the synthesis dock's controllers run: a synthesis as the form describes it, and a comparison."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.files.nifti import Volume
from ..core.synthesis.options import SynthesisOptions

__all__ = ["ComparisonRequest", "SynthesisRequest"]


@dataclass(frozen=True)
class SynthesisRequest:
    """One synthesis, as the form describes it: what the worker needs and how to show it."""

    source: Volume
    checkpoint: str
    direction: str
    options: SynthesisOptions
    truth: Volume | None = None
    mask: object = None  # a boolean array on the source's grid, or None: the automatic head mask
    preview_first: bool = True
    source_layer: str = ""
    truth_layer: str | None = None
    subject: str = ""
    truth_subject: str | None = None  # the truth's subject when it is not the source's (its figures compare two)
    notes: tuple[str, ...] = ()  # what the dock says with the run (a truth of another subject or grid)

    @property
    def previews_first(self) -> bool:
        """A one-pass preview comes before the result (the result is not itself a preview)."""
        return self.preview_first and not self.options.preview


@dataclass(frozen=True)
class ComparisonRequest:
    """Several generators on the request's source and truth, with its options."""

    request: SynthesisRequest
    checkpoints: tuple[str, ...]
