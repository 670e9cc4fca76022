"""What a person watching sees on stderr: one-line notes and a tqdm progress bar. Both stay
off stdout, which carries only the result a script reads. The bar is drawn only on a
terminal (a log file or a pipe would fill with carriage returns), and not with --quiet."""
import sys
from typing import TextIO

from tqdm import tqdm


def bar_wanted(quiet: bool, stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return not quiet and bool(isatty and isatty())


class Reporter:
    def __init__(self, quiet: bool = False, stream: TextIO | None = None):
        self.quiet = quiet
        self.stream = stream or sys.stderr

    def note(self, message: str) -> None:
        """A line for the person watching; --quiet keeps only errors."""
        if not self.quiet:
            # Through tqdm, so that a bar being drawn is moved below the line, not cut.
            tqdm.write(message, file=self.stream)

    def error(self, message: str) -> None:
        tqdm.write(f"uploader: error: {message}", file=self.stream)

    def bar(self, total: int | None, initial: int = 0, description: str = "") -> tqdm:
        return tqdm(total=total, initial=initial, desc=description, unit="B", unit_scale=True,
                    unit_divisor=1024, file=self.stream, dynamic_ncols=True, leave=True,
                    disable=not bar_wanted(self.quiet, self.stream))


def move_to(bar: tqdm, position: int) -> None:
    """Set the bar to `position` bytes: forwards as bytes go out, backwards when a try is
    abandoned or the API's offset differs from ours."""
    bar.n = position
    bar.refresh()
