"""What each controller of the synthesis dock is handed: the narrow state it works on, never the dock."""

from __future__ import annotations

from dataclasses import dataclass

from .dock_status import DockStatus
from .job_runner import JobRunner
from .result_view import ResultView
from .synthesis_form import SynthesisForm

__all__ = ["DockContext"]


@dataclass(frozen=True)
class DockContext:
    """The viewer, the form (what to run), the job runner (how it runs), the result view (its layers)
    and the status (what the user is told); the controllers share these and nothing else."""

    viewer: object
    form: SynthesisForm
    job: JobRunner
    view: ResultView
    lines: DockStatus

    @property
    def side_by_side(self) -> bool:
        return self.form.side_by_side.value

    def run_aside(self, function, what: str, on_done) -> bool:
        """Run a Save or an export beside the job (one at a time: :attr:`JobRunner.aside_changed` tells
        the buttons); its error is the status line."""
        return self.job.run_aside(function, what, on_done, lambda line: setattr(self.lines, "text", line))
