"""Writing files so that a reader sees the old file or the whole new one, never half of one.

Every file scorelab writes outside a staging directory goes through `write_atomic`: the bytes go to a
temporary file in the same directory (so the final rename never crosses file systems), then
`os.replace` puts it in place. If writing fails (a full disk, a kill signal turned into an exception,
Ctrl-C), the temporary file is removed and the error propagates: nothing half-written stays behind.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any, Callable


def tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_atomic(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    tmp = tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, OSError) and (e.filename is None or str(e.filename) == str(tmp)):
            e.filename = str(path)  # a failed write names no file, or the temporary one: say which file failed
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | Path, data: Any, **kw: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, default=str, **kw) + "\n")


def describe_os_error(e: OSError) -> str:
    """One line for a failed file operation: which file, and what to do about the common causes."""
    where = e.filename if e.filename is not None else ""
    what = e.strerror or str(e)
    hint = {errno.ENOSPC: "the disk is full; free some space (nothing half-written was kept)",
            errno.EDQUOT: "the disk quota is exhausted; free some space (nothing half-written was kept)",
            errno.EROFS: "the file system is read-only; choose another location",
            errno.EACCES: "permission denied; choose a location you can write to",
            errno.ELOOP: "a symbolic link points to itself (a loop); fix or remove the link"}.get(e.errno)
    text = f"{where}: {what}" if where else what
    return f"{text}; {hint}" if hint else text
