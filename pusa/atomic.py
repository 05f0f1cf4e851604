"""Write-then-rename: a file appears whole at its final name or not at all.

Every writer of outputs, sidecars, exported weights and stored uploads goes through
:func:`atomic_file`, so an error, a cancel or a kill never leaves a half-written file under the
final name. Leftovers of a killed process are hidden dot-files ending in ``.part`` beside the
target, which a service can sweep at start (:data:`PART_GLOB`).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PART_GLOB = ".*.part"


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
