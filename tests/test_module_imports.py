"""Every module of the package imports on its own, whatever was imported before.

Run in a child interpreter: for each module the package's modules are dropped
from sys.modules and the module is imported first, so an import cycle that only
works in one order (A before B) fails here instead of in whichever test or
command happens to import B first.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, pkgutil, sys
import loyalty_cli
names = sorted(m.name for m in pkgutil.walk_packages(loyalty_cli.__path__, "loyalty_cli.")
               if not m.name.endswith("__main__"))  # __main__ runs the CLI
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m.startswith("loyalty_cli")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {exc!r}")
print(len(names))
print("\\n".join(failed))
"""


def test_each_module_imports_first():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert int(out[0]) > 40
    assert [line for line in out[1:] if line] == []
