"""File output, one helper family for every writer: a file glmc-zoo writes is either the whole new content or
the previous file as it was, and nothing that is not a regular file is ever replaced.

- A regular file (or a new path): the bytes go to a temporary file beside the target, are flushed to disk
  (fsync), then renamed over the target in one step. When anything fails (a full disk, no permission), the
  temporary file is removed, the target is untouched, and the OSError names the target.
- A symlink: followed; its target is written as above (the link stays a link).
- Anything else that exists (a device such as /dev/null or /dev/full, a FIFO, a socket, /dev/stdout): opened
  and written through, as a shell's `>` would; renaming a file over it would replace a system's device node
  (as root, in a container) or a user's pipe.
- Inside the package's own `weights/` folder: refused (those folders are written only by `glmc-zoo bundle`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from glmc_zoo.errors import OutputRefusedError

#: The package's bundled weight sets: no command but `bundle` writes there.
PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` (see the module's rules); returns `path`."""
    path = Path(path)
    target = output_target(path)
    if _writes_through(target):
        return _write_through(path, target, data)
    tmp = temp_file_for(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        _unlink(tmp)
        if isinstance(e, OSError):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    return place_file(tmp, path)


def place_file(tmp: str | Path, path: str | Path) -> Path:
    """Put the finished temporary file `tmp` (beside the target) at `path`: renamed over a regular file (keeping
    its permissions) or a new path, copied through into a device, FIFO or the like. `tmp` is gone afterwards."""
    path = Path(path)
    try:
        target = output_target(path)
        if _writes_through(target):
            with open(tmp, "rb") as f:
                _write_through(path, target, f.read())
            return path
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    finally:
        _unlink(tmp)
    return path


def temp_file_for(path: str | Path) -> Path:
    """An empty temporary file for a writer that needs a file on disk before `place_file` (an ONNX export that
    is verified first): beside the target (same file system: the rename is atomic), or in the temporary folder
    for a target that is written through (never a new file in /dev)."""
    path = Path(path)
    target = output_target(path)
    folder = Path(tempfile.gettempdir()) if _writes_through(target) else target.parent
    blocking = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), None)
    if blocking is not None:  # a part of the path is a file: name that part
        raise NotADirectoryError(20, "a file, not a folder: the output's folder cannot be made there", str(blocking))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    os.close(fd)
    return Path(tmp)


def output_target(path: str | Path) -> Path:
    """Where writing `path` lands: `path`, or the file its symlinks lead to. `IsADirectoryError` for a folder;
    `PermissionError` naming the package's own weights folder for a path inside it."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if target.is_dir():
        raise IsADirectoryError(21, "is a folder; give a file path", str(path))
    check_not_package_weights(path)
    return target


_BUNDLING: list[Path] = []  # the weight-set folders `bundle` is writing right now (`bundling`)


@contextlib.contextmanager
def bundling(folder: str | Path):
    """`glmc-zoo bundle` writing its weight set `folder` (its verified model.onnx included): the one place the
    package's own weights may be written."""
    _BUNDLING.append(Path(os.path.realpath(folder)))
    try:
        yield
    finally:
        _BUNDLING.pop()


def check_not_package_weights(path: str | Path) -> None:
    """Refuse a path inside the package's bundled weights (they are written only by `glmc-zoo bundle`, which
    checks, exports and verifies a whole weight set): a stray file there would change what the registry reads."""
    real = Path(os.path.realpath(path))
    if any(real == b or b in real.parents for b in _BUNDLING):
        return
    if real == PACKAGE_WEIGHTS or PACKAGE_WEIGHTS in real.parents:
        raise OutputRefusedError(f"{path}: inside the package's own weight sets ({PACKAGE_WEIGHTS}), which only "
                                 f"`glmc-zoo bundle` writes (it exports and verifies a whole set); write elsewhere")


def _writes_through(target: Path) -> bool:
    """An existing target that is not a regular file (a device, FIFO, socket): written into, never replaced."""
    try:
        mode = target.stat().st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _write_through(path: Path, target: Path, data: bytes) -> Path:
    try:
        with open(target, "wb") as f:
            f.write(data)
            f.flush()
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    return path


def _unlink(tmp: str | Path) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
