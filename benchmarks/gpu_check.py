"""The GPU check of issue 12: the CUDA tests and the GPU rows of the benchmarks, in one run.

    python3 benchmarks/gpu_check.py [--wheels DIR] [--budget 280] [--out DIR]

Run from the repository root on a machine with one CUDA GPU. In order, each step with a
timeout so that the whole stays within ``--budget`` seconds (default 280, under 5 minutes):

1. the CUDA tests: every test whose name says ``cuda`` in the rollout, forecast-writer and
   resume tests (CUDA against CPU maths; a failed CUDA rollout resumed byte-identical; a
   SIGKILLed CUDA forecast resumed byte-identical);
2. ``bench_rollout.py --device cuda`` at 1 degree, 20 steps (the fno-demo network's row);
3. ``bench_rollout.py --device cuda`` at 0.25 degree (721x1440), 12 steps, with the
   SFNO-class row (190 M parameters, 69 channels, 8 steps), the codec table and the memory
   row (69 channels at 721x1440, 10 and 40 steps).

Without a CUDA device (this project's CI machine, a laptop) it says so and exits 0: there is
nothing to check. Tables and logs go to stdout and to ``--out`` (default ``$OUT`` when set,
else ``gpu_check_out/``) as ``gpu_check.md``.

**Packages.** GPU machines often run an image with CUDA torch and the scientific stack but
not this project's other requirements, and without a network. The check names what is
missing; ``--wheels DIR`` installs a folder of wheels, offline and without resolving, into
a virtualenv that sees the image's packages (``--system-site-packages``: its CUDA torch
stays), and runs there. Fill that folder beforehand, on a machine with a network::

    python3 benchmarks/gpu_check.py --fetch-wheels .whl [--python-version 3.12]

which resolves this project's requirements for the GPU machine's Python and platform (at
this environment's versions), and downloads those that its image lacks (``DEVICE_IMAGE``:
the packages such images hold, torch among them; edit it for another image) and that are
not optional at run time (``OPTIONAL``); torch-harmonics, a pure-Python sdist, is built
into a wheel.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Modules the check imports, and the requirement that provides each (this project's pins).
REQUIRED = {
    "dagster": "dagster==1.13.27",
    "zarr": "zarr>=3.1,<3.2",
    "numcodecs": "numcodecs",
    "neuralop": "neuraloperator==2.0.0",
    "torch_harmonics": "torch-harmonics>=0.7,<0.8",
    "dask": "dask[array]",
    "xarray": "xarray",
    "fsspec": "fsspec",
    "pydantic": "pydantic>=2.7",
    "yaml": "pyyaml",
    "pandas": "pandas",
    "scipy": "scipy",
    "pytest": "pytest",
}
# Distributions a CUDA image of the device kind holds already (never downloaded).
DEVICE_IMAGE = {
    "torch", "triton", "numpy", "scipy", "pandas", "pyarrow", "xarray", "fsspec", "pyyaml",
    "pytest", "pluggy", "iniconfig", "packaging", "typing-extensions", "filelock", "jinja2",
    "markupsafe", "networkx", "sympy", "mpmath", "click", "cloudpickle", "requests",
    "urllib3", "idna", "certifi", "charset-normalizer", "six", "python-dateutil", "tqdm",
    "rich", "pygments", "markdown-it-py", "mdurl", "protobuf", "grpcio", "psutil",
    "matplotlib", "contourpy", "cycler", "fonttools", "kiwisolver", "pillow", "pyparsing",
    "h5py", "opt-einsum", "toolz", "msgpack", "threadpoolctl", "tabulate", "xxhash",
    "attrs", "hypothesis", "sortedcontainers", "setuptools", "wheel", "pip", "platformdirs",
    "multipledispatch", "joblib", "scikit-learn", "coverage", "pytest-timeout",
    "pytest-xdist", "execnet", "typer", "shellingham", "annotated-doc", "anyio", "h11",
    "httpx", "httpcore", "zipp", "wrapt", "absl-py", "portalocker", "humanize",
    "nvidia-cublas", "nvidia-cuda-runtime", "nvidia-cudnn-cu13", "nvidia-cufft",
    "nvidia-curand", "nvidia-cusolver", "nvidia-cusparse", "nvidia-nccl-cu13",
    "nvidia-nvjitlink", "nvidia-nvtx", "nvidia-cuda-nvrtc", "nvidia-cuda-cupti",
    "nvidia-cusparselt-cu13", "nvidia-cufile", "nvidia-nvshmem-cu13", "cuda-bindings",
    "cuda-pathfinder", "cuda-toolkit",
}  # fmt: skip
CUDA_TESTS = [
    "tests/unit/weather_assets/forecast/test_rollout.py",
    "tests/unit/resources/test_forecast_writer.py",
    "tests/integration/test_forecast_resume.py",
]
VENV_ENV = "WXPLAT_GPU_CHECK_VENV"


def _missing() -> list[str]:
    return [m for m in REQUIRED if importlib.util.find_spec(m) is None]


def _cuda() -> tuple[bool, str]:
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} sees no CUDA device"
    return True, f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}"


def _venv_with_wheels(wheels: Path) -> Path:
    """A virtualenv over the image's packages with the wheels installed offline.

    ``--no-deps``: the folder holds the resolved set already (``fetch_wheels``), less what
    the image has and what is optional at run time.
    """
    venv = Path(tempfile.gettempdir()) / "wxplat-gpu-check-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True
        )
    files = sorted(str(p) for p in wheels.glob("*.whl"))
    if not files:
        raise SystemExit(f"gpu_check: no wheels in {wheels}")
    print(f"gpu_check: installing {len(files)} wheels from {wheels} (offline)", flush=True)
    cmd = [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    subprocess.run([*cmd, *files], check=True)
    return python


# Requirements with no binary wheel (pure Python sdists): built into wheels here.
BUILT = ["torch-harmonics>=0.7,<0.8"]
# Dependencies imported only when present (never by what the check runs): left out.
OPTIONAL = {"wandb"}


def fetch_wheels(dest: Path, python_version: str) -> None:
    """Download, for the GPU machine, the wheels of this project's requirements that its
    image lacks (run where there is a network). Versions are this environment's where it
    has the package, so the GPU runs what CI tests."""
    from importlib import metadata

    dest.mkdir(parents=True, exist_ok=True)
    platform = [
        "--only-binary=:all:",
        "--implementation", "cp",
        "--python-version", python_version,
        *(f"--platform={p}" for p in (
            "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
            "manylinux2014_x86_64", "manylinux1_x86_64",
        )),
    ]  # fmt: skip
    binary = [r for r in REQUIRED.values() if r not in BUILT]
    here = {
        _canonical(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if d.metadata["Name"] and _canonical(d.metadata["Name"]) not in DEVICE_IMAGE
    }
    with tempfile.TemporaryDirectory() as tmp:
        pins = Path(tmp) / "constraints.txt"
        pins.write_text("".join(f"{n}=={v}\n" for n, v in sorted(here.items()) if "+" not in v))
        report = Path(tmp) / "report.json"
        resolve = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        resolve += ["--report", str(report), "--target", str(Path(tmp) / "t"), *platform]
        if subprocess.run([*resolve, "-c", str(pins), *binary]).returncode != 0:
            print("gpu_check: this environment's versions do not all resolve; newest ones")
            subprocess.run([*resolve, *binary], check=True)
        chosen = json.loads(report.read_text())["install"]
    wanted = [
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in chosen
        if _canonical(item["metadata"]["name"]) not in DEVICE_IMAGE | OPTIONAL
    ]
    print(f"gpu_check: downloading {len(wanted)} wheels the image lacks into {dest}")
    download = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest)]
    subprocess.run([*download, *platform, *wanted], check=True)
    built = [here.get("torch-harmonics") and f"torch-harmonics=={here['torch-harmonics']}"]
    built = [b for b in built if b] or BUILT
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dest), *built])
    size = sum(p.stat().st_size for p in dest.glob("*.whl"))
    print(f"gpu_check: {len(list(dest.glob('*.whl')))} wheels, {size / 2**20:.1f} MiB in {dest}")


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _steps(python: str) -> list[tuple[str, list[str], int]]:
    bench = [python, "benchmarks/bench_rollout.py", "--device", "cuda", "--repeats", "3"]
    return [
        ("CUDA tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda",
                        *CUDA_TESTS], 100),
        ("forecast step at 1 degree (fno-demo network)",
         [*bench, "--step", "1.0", "--steps", "20", "--no-codecs", "--no-memory"], 45),
        ("forecast step at 0.25 degree, SFNO-class row, codecs, memory",
         [*bench, "--step", "0.25", "--steps", "12", "--sfno", "--memory-step", "0.25",
          "--memory-steps", "10,40"], 180),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, help="folder of wheels for missing packages")
    parser.add_argument("--fetch-wheels", type=Path, help="download those wheels (network)")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    parser.add_argument("--budget", type=float, default=280.0, help="seconds for all steps")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")))
    args = parser.parse_args()
    if args.fetch_wheels:
        fetch_wheels(args.fetch_wheels, args.python_version)
        return 0
    ok, what = _cuda()
    if not ok:
        print(f"gpu_check: no GPU to check here ({what}); run it on a machine with CUDA")
        return 0
    python = sys.executable
    missing = _missing()
    if missing and os.environ.get(VENV_ENV) is None:
        if args.wheels is None:
            print(
                f"gpu_check: missing packages {[REQUIRED[m] for m in missing]}: run "
                "`python3 benchmarks/gpu_check.py --fetch-wheels .whl` where there is a "
                "network, bring .whl along and pass --wheels .whl"
            )
            return 2
        python = str(_venv_with_wheels(args.wheels))
        env = {**os.environ, VENV_ENV: "1"}
        return subprocess.call([python, __file__, *sys.argv[1:]], cwd=ROOT, env=env)
    print(f"gpu_check: {what}; budget {args.budget:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    report, failed = [f"# GPU check\n\n{what}\n"], []
    for name, cmd, limit in _steps(python):
        left = args.budget - (time.monotonic() - start)
        if left < 10:
            failed.append(f"{name}: not run, the budget is spent")
            continue
        t0 = time.monotonic()
        print(f"\n== {name} (at most {min(limit, left):.0f} s)", flush=True)
        try:
            out = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=min(limit, left)
            )
            text, code = out.stdout + out.stderr[-3000:], out.returncode
        except subprocess.TimeoutExpired as exc:
            text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout
            text, code = (text or "") + f"\n(timed out after {min(limit, left):.0f} s)", -1
        print(text, flush=True)
        seconds = time.monotonic() - t0
        report.append(f"## {name} ({seconds:.0f} s, exit {code})\n\n```\n{text}\n```\n")
        if code != 0:
            failed.append(f"{name}: exit {code}")
    (args.out / "gpu_check.md").write_text("\n".join(report))
    total = time.monotonic() - start
    print(f"\ngpu_check: {total:.0f} s; report in {args.out / 'gpu_check.md'}")
    for line in failed:
        print(f"gpu_check: FAILED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
