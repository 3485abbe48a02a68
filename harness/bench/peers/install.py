"""One virtualenv per peer toolkit under the cache folder, with torch pinned to this project's version (OpenNMT-py
pins torch<2.3, so it is installed with --no-deps and then its other requirements); a stamp makes reruns instant."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.bench.peers.measure import check, run_measured, say
from harness.errors import HarnessError
from harness.io import atomic_write_text

TORCH_PIN = "torch==2.13.0"


@dataclass
class Toolkit:
    name: str
    package: str  # pip requirement
    no_deps: bool  # install the package alone, then its requirements except torch
    extra: tuple[str, ...] = ()  # imported but not declared by the package


TOOLKITS = {
    "opennmt": Toolkit("opennmt", "OpenNMT-py==3.5.1", True),
    "joeynmt": Toolkit("joeynmt", "joeynmt==2.3.0", False, ("importlib_metadata",)),
}


def venv_python(root: Path, name: str) -> Path:
    return root / name / "bin" / "python"


def install(tk: Toolkit, root: Path) -> Path:
    """One virtualenv per toolkit under `root`, torch pinned; a stamp file makes reruns instant."""
    venv = root / tk.name
    python = venv_python(root, tk.name)
    stamp = venv / ".bench-peers-installed"
    spec = " ".join([tk.package, TORCH_PIN, *tk.extra])
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == spec:
        return python
    say(f"installing {tk.package} with {TORCH_PIN} into {venv} (a few minutes) ...")
    log = root / "logs" / f"install-{tk.name}.log"
    if not python.is_file():
        check(run_measured([sys.executable, "-m", "venv", str(venv)], log), f"python -m venv {venv}")
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    check(run_measured(pip + [TORCH_PIN], log.with_suffix(".torch.log")), f"pip install {TORCH_PIN}")
    if tk.no_deps:
        check(run_measured(pip + ["--no-deps", tk.package], log), f"pip install --no-deps {tk.package}")
        dist = tk.package.split("==")[0]
        # its declared requirements, less torch (already pinned) and optional extras
        code = (
            "import importlib.metadata as m, re\n"
            f"reqs = m.requires({dist!r}) or []\n"
            "name = lambda r: re.split(r'[<>=!~; \\[]', r)[0].strip().lower()\n"
            "print('\\n'.join(r for r in reqs if 'extra ==' not in r and name(r) != 'torch'))"
        )
        reqs = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
        reqs = [r.split(";")[0].strip() for r in reqs if r.strip()]
        check(
            run_measured(pip + [TORCH_PIN, *reqs, *tk.extra], log.with_suffix(".deps.log")),
            f"pip install {' '.join(reqs)}",
        )
    else:
        check(run_measured(pip + [tk.package, TORCH_PIN, *tk.extra], log), f"pip install {tk.package}")
    version = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    if not version.startswith(TORCH_PIN.split("==")[1]):
        raise HarnessError(f"{venv}: torch {version or '?'} installed, expected {TORCH_PIN}")
    atomic_write_text(stamp, spec + "\n")
    return python
