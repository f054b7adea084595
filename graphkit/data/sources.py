r"""Where raw dataset files come from: the data root, an offline mirror, or a
download.

The resolution order is fixed and documented:

* **root** (where loaders write ``processed/`` files): the ``root`` argument,
  then ``$GRAPHKIT_DATA``, then ``~/.cache/graphkit``.
* **mirror** (a read-only folder of raw files laid out like the loaders' own
  roots): the ``mirror`` argument, then ``$GRAPHKIT_MIRROR``.

Before a loader could download anything, the raw files of the requested
dataset are copied from the mirror into ``root``. The mirror is only ever
read. When the files are still missing and no network is reachable (or
``$GRAPHKIT_OFFLINE=1``), :class:`DatasetNotAvailableError` is raised within
seconds, naming the dataset, every path searched and how to supply the files.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

log = logging.getLogger(__name__)

__all__ = [
    'DatasetNotAvailableError',
    'RawLayout',
    'resolve_root',
    'resolve_mirror',
    'is_offline',
    'stage_raw_files',
]

ENV_ROOT = 'GRAPHKIT_DATA'
ENV_MIRROR = 'GRAPHKIT_MIRROR'
ENV_OFFLINE = 'GRAPHKIT_OFFLINE'


class DatasetNotAvailableError(FileNotFoundError):
    r"""Raised when a dataset's raw files are absent and cannot be
    downloaded."""


@dataclass(frozen=True)
class RawLayout:
    r"""The raw files a loader needs, relative to the loader's ``root``.

    Args:
        dirs (Sequence[str]): folders (relative to the data root) whose
            content is copied from the mirror, e.g. ``Planetoid/Cora/raw``.
        files (Sequence[str]): files that must exist (relative to the data
            root) for the loader to run without downloading. A trailing
            ``/`` means "a non-empty folder".
        url (str, optional): a host the loader downloads from, used only to
            tell whether a download could succeed.
    """
    dirs: Sequence[str]
    files: Sequence[str]
    url: str | None = None
    guards: Sequence[Callable[[Path], None]] = field(default=(),
                                                     compare=False)

    def missing(self, root: Path) -> list[Path]:
        out = []
        for rel in self.files:
            path = root / rel
            if rel.endswith('/'):
                if not path.is_dir() or not any(path.iterdir()):
                    out.append(path)
            elif not path.is_file():
                out.append(path)
        return out


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    r"""Returns the data root: ``root``, ``$GRAPHKIT_DATA`` or
    ``~/.cache/graphkit``."""
    if root is None:
        root = os.environ.get(ENV_ROOT) or Path.home() / '.cache' / 'graphkit'
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_mirror(mirror: str | os.PathLike | None = None) -> Path | None:
    r"""Returns the offline mirror: ``mirror`` or ``$GRAPHKIT_MIRROR``, or
    :obj:`None` when neither is set."""
    if mirror is None:
        mirror = os.environ.get(ENV_MIRROR) or None
    if mirror is None:
        return None
    path = Path(mirror).expanduser()
    if not path.is_dir():
        raise NotADirectoryError(
            f"The offline mirror '{path}' is not a folder. Set "
            f"${ENV_MIRROR} (or pass mirror=...) to a folder laid out like "
            f"the loaders' roots, e.g. '<mirror>/Planetoid/Cora/raw/'.")
    return path


def _host_of(url: str) -> str:
    rest = url.split('://', 1)[-1]
    return rest.split('/', 1)[0].split(':', 1)[0]


def is_offline(url: str | None = None, timeout: float = 2.0) -> bool:
    r"""Tells whether downloads from ``url`` cannot succeed.

    ``$GRAPHKIT_OFFLINE=1`` forces :obj:`True` (and ``0`` forces
    :obj:`False`). Otherwise a TCP connection to the URL's host on port 443 is
    attempted in a daemon thread, so a hanging DNS lookup can never block
    longer than ``timeout`` seconds.
    """
    flag = os.environ.get(ENV_OFFLINE)
    if flag is not None and flag.strip() != '':
        return flag.strip().lower() not in ('0', 'false', 'no')
    if url is None:
        return True
    host = _host_of(url)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return not (result and result[0])


def _copy_tree(src: Path, dst: Path) -> int:
    r"""Copies the files under ``src`` to ``dst`` without copying permission
    bits (mirror files may be read-only). Existing files of the same size are
    kept. Returns the number of files copied."""
    copied = 0
    for path in sorted(src.rglob('*')):
        if path.is_dir():
            continue
        rel = path.relative_to(src)
        if 'processed' in rel.parts:
            continue
        target = dst / rel
        if target.is_file() and target.stat().st_size == path.stat().st_size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + '.part')
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
        copied += 1
    return copied


def stage_raw_files(name: str, layout: RawLayout, root: Path,
                    mirror: Path | None) -> None:
    r"""Makes sure ``layout``'s raw files exist under ``root``.

    Files are copied from ``mirror`` first. If some are still missing, the
    function returns only when a download can be attempted; otherwise it
    raises :class:`DatasetNotAvailableError`.
    """
    if mirror is not None and layout.missing(root):
        n = 0
        for rel in layout.dirs:
            src = mirror / rel
            if src.is_dir():
                n += _copy_tree(src, root / rel)
            elif src.is_file():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                if not (root / rel).is_file():
                    shutil.copyfile(src, root / rel)
                    n += 1
        if n:
            log.info("Copied %d raw file(s) of '%s' from the mirror %s", n,
                     name, mirror)
    for guard in layout.guards:
        guard(root)
    missing = layout.missing(root)
    if not missing:
        return
    if not is_offline(layout.url):
        log.info("Raw files of '%s' are missing; the loader will download "
                 "them", name)
        return
    searched = [str(p) for p in missing]
    if mirror is not None:
        searched += [str(mirror / rel) for rel in layout.files]
    else:
        searched.append(f'(no offline mirror: ${ENV_MIRROR} is not set)')
    lines = '\n  '.join(dict.fromkeys(searched))
    raise DatasetNotAvailableError(
        f"Dataset '{name}' is not available offline: its raw files are "
        f"missing and no download is possible.\nPaths searched:\n  {lines}\n"
        f"To supply the files, either put them under the data root "
        f"'{root}' (set ${ENV_ROOT} or pass root=...), or point "
        f"${ENV_MIRROR} (or mirror=...) at a folder that holds "
        f"{', '.join(layout.files)} in this layout, or connect to the "
        f"network so the loader can download them.")
