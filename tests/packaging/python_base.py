"""A Python base image made on this host, for building the sidecar image without a registry.

``docker pull`` fails here, so the base is assembled from the interpreter that runs the tests:
its binary and ``libpython``, the standard library (without its tests, tkinter, idlelib and
other things a daemon never imports), the shared libraries ``ldd`` says those need, plus the
few libraries manylinux wheels may link against (``libgcc_s``, ``libstdc++`` …), and pip
unpacked from a wheel. Paths stay as they are on the host (the interpreter finds its prefix
from its own location) and ``/usr/local/bin/python3`` links to it, as in the official images.
The files go into an in-memory tar that ``docker import`` turns into a one-layer image.

It takes a couple of seconds and needs nothing but the host, so it is rebuilt every run. The
tag is a digest of its inputs (every file's path, size and mtime, and the pip wheel), so two
builds from the same inputs name the same image.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

#: Standard-library directories a daemon never imports; they make up most of its size.
SKIPPED_DIRS = frozenset(
    {
        "site-packages",
        "dist-packages",
        "test",
        "tests",
        "idlelib",
        "tkinter",
        "turtledemo",
        "lib2to3",
        "ensurepip",
        "pydoc_data",
        "__phello__",
    }
)
#: Libraries that manylinux wheels may expect from the system (PEP 599's list, where present).
WHEEL_LIBRARIES = (
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libutil.so.1",
    "libresolv.so.2",
)
PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
)
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _stdlib_files() -> Iterator[Path]:
    stdlib = Path(sysconfig.get_path("stdlib"))
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("config-"))
        for name in sorted(files):
            # Optimized bytecode (-O, -OO) is never loaded; the Tk binding needs X11 libraries.
            if (name.endswith(".pyc") and ".opt-" in name) or name.startswith("_tkinter"):
                continue
            yield Path(root) / name


def _interpreter() -> list[Path]:
    executable = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    found = [executable]
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir = Path(str(sysconfig.get_config_var("LIBDIR")))
        found.append(libdir / str(sysconfig.get_config_var("INSTSONAME")))
    return found


def _shared_libraries(objects: list[Path]) -> set[Path]:
    result = subprocess.run(
        ["ldd", *map(str, objects)], capture_output=True, text=True, check=False
    )
    libraries: set[Path] = set()
    for line in result.stdout.splitlines():
        match = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s+(/\S+)\s+\(", line)
        if match:
            libraries.add(Path(match.group(1)))
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    for name in WHEEL_LIBRARIES:
        match = re.search(rf"\s{re.escape(name)} \(libc6,x86-64\) => (\S+)", cache)
        if match:
            libraries.add(Path(match.group(1)))
    return libraries


def runtime_files() -> list[Path]:
    """Every host file the base image carries, sorted."""
    interpreter = _interpreter()
    stdlib = list(_stdlib_files())
    extensions = [p for p in stdlib if p.suffix == ".so"]
    return sorted({*interpreter, *stdlib, *_shared_libraries([*interpreter, *extensions])})


def digest(files: list[Path], pip_wheel: Path) -> str:
    """A digest of the base's inputs: paths, sizes and mtimes, and the pip wheel's name."""
    sha = hashlib.sha256(pip_wheel.name.encode())
    for path in files:
        stat = path.stat()
        sha.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return sha.hexdigest()[:16]


class _TarWriter:
    """Adds host paths to a tar, recreating symlinked directories (``/lib`` → ``usr/lib``)."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self._tar = tar
        self._done: set[str] = set()

    def add(self, path: Path) -> None:
        current = Path("/")
        parts = path.parts[1:]
        for index, part in enumerate(parts):
            current /= part
            if current.is_symlink():
                self._entry(current)
                # Continue below the link's target with the rest of the path.
                rest = parts[index + 1 :]
                target = Path(os.path.normpath(current.parent / os.readlink(current)))
                if rest or target.is_file():
                    self.add(target.joinpath(*rest))
                return
            self._entry(current)

    def _claim(self, name: str) -> bool:
        """False when ``name`` is in the tar already (docker import refuses duplicates)."""
        if name in self._done:
            return False
        self._done.add(name)
        return True

    def _entry(self, path: Path) -> None:
        if not self._claim(str(path).lstrip("/")):
            return
        info = self._tar.gettarinfo(str(path), str(path).lstrip("/"))
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        # Readable by everyone: the daemon runs unprivileged, and pyenv lives under /root (0700).
        info.mode |= 0o555 if info.isdir() else 0o444
        if info.isreg():
            with path.open("rb") as handle:
                self._tar.addfile(info, handle)
        else:
            self._tar.addfile(info)

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._claim(name)
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        self._tar.addfile(info, io.BytesIO(data))

    def add_symlink(self, name: str, target: str) -> None:
        self._claim(name)
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        self._tar.addfile(info)

    def add_dir(self, name: str, mode: int) -> None:
        if not self._claim(name):
            return
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        self._tar.addfile(info)


def base_tar(files: list[Path], pip_wheel: Path) -> bytes:
    """The root file system of the base image, as an uncompressed tar."""
    buffer = io.BytesIO()
    purelib = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})[
        "purelib"
    ]
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        writer = _TarWriter(tar)
        for directory in ("usr", "usr/local", "usr/local/bin", "etc", "var", "var/lib"):
            writer.add_dir(directory, 0o755)
        writer.add_dir("tmp", 0o1777)
        for path in files:
            writer.add(path)
        # pip, unpacked as `pip install` would leave it: a wheel is a zip of the final layout.
        with zipfile.ZipFile(pip_wheel) as wheel:
            for member in wheel.infolist():
                if not member.is_dir():
                    writer.add_bytes(f"{purelib.lstrip('/')}/{member.filename}", wheel.read(member))
        executable = str(_interpreter()[0])
        writer.add_symlink("usr/local/bin/python3", executable)
        writer.add_symlink("usr/local/bin/python", executable)
        writer.add_bytes("etc/passwd", PASSWD.encode())
        writer.add_bytes("etc/group", GROUP.encode())
    return buffer.getvalue()
