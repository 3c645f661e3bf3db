"""What every `scorelab` command shares: the typer app, the consoles, the one-line failure and the
option checks."""

from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup
from rich.console import Console

from .config.loader import ConfigError, short

class _SafeGroup(TyperGroup):
    """Every command runs inside this: a ConfigError, a failed file operation (full disk, read-only or
    vanished folder, a link loop), absurd nesting or exhausted memory end in one line and exit 2."""

    def invoke(self, ctx):
        from .atomic import describe_os_error

        try:
            return super().invoke(ctx)
        except ConfigError as e:
            fail(str(e))
        except OSError as e:
            fail(describe_os_error(e))
        except RecursionError:
            fail("the input is nested too deeply to read (a table or list inside itself hundreds of times)")
        except MemoryError:
            fail("out of memory; simulate fewer citizens or keep less detail (--ledger none)")


@contextmanager
def start_up():
    """The imports a command makes when it starts, with the cyclic collector paused and what they built then
    frozen out of later collections (see cli.py's first lines)."""
    on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if on:
            gc.enable()


app = typer.Typer(cls=_SafeGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Simulate social scoring systems over synthetic societies and measure what they do to people.")
# emoji codes off: a scenario's name, a path or a description that holds ":word:" is printed as written,
# not as a picture (and rich's emoji table, ~2 ms, is not loaded)
console = Console(emoji=False)
err = Console(stderr=True, emoji=False)

DEFAULT_SCENARIO = "rongcheng"


def fail(message: str) -> None:
    """Report a user's mistake and exit 2."""
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(2)


def _output_file(option: str, path: Path) -> None:
    """An output file's folder must exist and be writable, and the path must not be a folder: checked first."""
    from .store import check_writable

    if path.is_dir():
        fail(f"{option}: {path} is a folder; name a file")
    if not path.parent.is_dir():
        fail(f"{option}: the folder {path.parent} does not exist; create it or name a file in an existing folder")
    try:
        check_writable(path, option)
    except ConfigError as e:
        fail(str(e))


def _positive(name: str, value: Optional[int]) -> None:
    if value is not None and value <= 0:
        fail(f"{name}: {value} is not allowed; give a whole number of at least 1")


def _ledger_option(value: str) -> str:
    v = value.strip().lower().replace("_", "").replace(",", "")
    if v in ("auto", "all", "none"):
        return v
    if re.fullmatch(r"[0-9]{1,19}", v) and int(v) > 0:  # ASCII digits only ("²".isdigit() is True)
        return v
    fail(f"--ledger: {short(value)} is not allowed; use all, none, auto, or a number of citizens to sample (e.g. 1000000)")
    return v


def _build_with_status(build, target: Path, **kw):
    """Run a report builder with a live status line on stderr naming each stage (and the time it took)."""
    import time

    t0 = time.perf_counter()
    with err.status("report: starting", spinner="dots") as status:
        def step(words: str) -> None:
            status.update(f"report: {words} [dim]({time.perf_counter() - t0:.1f} s)[/]")

        page = build(target, progress=step, **kw)
    err.print(f"report written in {time.perf_counter() - t0:.1f} s")
    return page
