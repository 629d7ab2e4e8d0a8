"""The on-disk module cache: generated source as real files, so Numba's ``cache=True`` works.

Numba caches compiled code next to the source file of a function (in its
``__pycache__``), keyed by the file's path and modification time. So each
generated kernel is written once to ``<cache dir>/gir_<key>.py`` and imported
from there. The key hashes the module source (which spells out the graph
structure and the options), the Numba version, the LLVM options gir sets
(:data:`LLVM_OPTIONS`) and the source of the helper modules the kernel calls
(Numba's cache would not notice those change). A new
process that compiles the same graph with the same options writes nothing,
imports the same file and loads the machine code from Numba's cache.

The folder is ``$GIR_CACHE_DIR/numba`` if ``GIR_CACHE_DIR`` is set, else
``~/.cache/gir/numba`` (:func:`gir.runtime.cache.disk_cache_dir`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import llvmlite.binding
import numba

from gir.runtime.cache import disk_cache_dir

_HELPER_FILES = ("support.py", "fastexp.py", "faddeeva.py")

#: LLVM options set once per process, before any kernel compiles. Numba cannot mark array
#: arguments noalias, so the loop vectorizer guards a loop with runtime overlap checks between
#: the arrays it stores and reads; past 128 checks (a nest storing a dozen arrays, as derivative
#: kernels do) it gives up and the loop runs scalar, 2-3x slower. The checks run once per inner loop.
LLVM_OPTIONS = ("-vectorize-memory-check-threshold=4096",)
for _option in LLVM_OPTIONS:
    llvmlite.binding.set_option("gir", _option)


@functools.cache
def _helpers_digest() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256((numba.__version__ + " ".join(LLVM_OPTIONS)).encode())
    for name in _HELPER_FILES:
        h.update((here / name).read_bytes())
    return h.hexdigest()


def module_key(source: str) -> str:
    """The cache key of a generated module."""
    return hashlib.sha256((_helpers_digest() + source).encode()).hexdigest()[:32]


def _write(folder: Path, key: str, source: str) -> Path:
    """``folder/gir_<key>.py`` holding ``source``, written once and atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gir_{key}.py"
    if not path.exists() or path.read_text() != source:
        # a concurrent reader sees the old file or the whole new one, never a part
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    return path


def load_module(source: str) -> ModuleType:
    """Write ``source`` to the cache folder (once) and import it as a module."""
    key = module_key(source)
    name = f"gir_numba_{key}"
    if name in sys.modules:
        return sys.modules[name]
    try:
        path = _write(disk_cache_dir(), key, source)
    except OSError:  # an unwritable cache folder: fall back to the temporary folder
        path = _write(disk_cache_dir(fallback=True), key, source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
