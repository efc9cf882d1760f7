"""What the command-line tools share: one-line errors, exit codes and progress bars."""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Callable
from contextlib import contextmanager

from .errors import MedSynthError

__all__ = ["CommandParser", "add_debug_argument", "counted", "progress_bar", "run_command"]

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose errors (a bad choice, a missing option, ``--stride abc``) are one
    line, ``prog: error: message``, and exit 1 as every other refusal does; its subcommands' parsers
    are of this class too."""

    def error(self, message):
        command = self.prog.split()[0]  # "medsynth", also for a subcommand's own parser ("medsynth synthesize")
        self.exit(EXIT_ERROR, f"{command}: error: {message}\n")


def add_debug_argument(parser: argparse.ArgumentParser, commands) -> None:
    """``--debug``, before or after any of ``commands`` (the parser's subcommands, all added):
    show the traceback and cause behind a one-line error."""
    help = "on an error, also print its traceback and cause"
    parser.add_argument("--debug", action="store_true", help=help)
    for command in commands.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=help)


def run_command(prog: str, handler: Callable[[], int | None], debug: bool = False) -> int:
    """Run a subcommand and turn user-facing failures into one line and an exit code.

    A :class:`MedSynthError` prints ``prog: error: <message>`` (after its traceback and
    cause with ``debug``) and returns 1, Ctrl-C returns 130, and warnings print as
    ``prog: warning: <message>``. Anything else is a bug and keeps its traceback.
    """
    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {message}", file=sys.stderr)

    previous = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        return handler() or 0
    except MedSynthError as error:
        if debug:
            traceback.print_exception(error)
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing partial was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = previous


def counted(number: int, noun: str) -> str:
    """``"1 pair"``, ``"2 pairs"``: a count and its noun, singular or plural (an ``s`` added)."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


@contextmanager
def progress_bar(description: str, total: int | None = None, unit: str = "it"):
    """A tqdm bar on stderr, yielded as a ``progress(done, total, detail=None)`` callback; ``detail``
    is shown after the counts (``IXI002-Guys-0828-T2.nii.gz 37%``), so that a bar of long steps moves.

    The bar appears at the first call, so a command that fails while checking its
    inputs prints its one-line error and nothing else.
    """
    from tqdm import tqdm

    bar = None

    def progress(done: int, total: int, detail: str | None = None) -> None:
        nonlocal bar
        if bar is None:
            # miniters=0: every call may redraw (at most every 0.1 s), also one that changes only the detail
            bar = tqdm(total=total, desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True, miniters=0)
        bar.total = total
        if detail is not None:
            bar.set_postfix_str(detail, refresh=False)
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()
