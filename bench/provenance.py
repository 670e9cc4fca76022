"""Where a benchmark's numbers come from: the commit and how much of the tree was not in it."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git(*command: str) -> str:
    """A git command's output in the repository; "unknown" when git cannot say."""
    try:
        return subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except Exception:
        return "unknown"
