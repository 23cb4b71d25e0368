"""A Dagster webserver on a demo instance, for end-to-end tests of the UI and for scripts.

Reusable pieces (no pytest here, so that ``scripts/screenshots.py`` imports them too):

- :func:`free_port`, :func:`wait_until` (bounded polling);
- :func:`start_webserver` / :func:`stop_webserver` / :func:`webserver`: ``dagster-webserver``
  (webserver only, no daemon: nothing launches runs behind a test's back; use ``dagster dev``
  as in ``test_webserver_e2e.py`` where sensors or backfills are the subject), on 127.0.0.1
  and a free port, against the ``DAGSTER_HOME`` of the ``env`` given;
- :func:`graphql` (the platform's own, ``weather_assets.backfill``): POST a query, the
  ``data`` of the answer or :class:`GraphQLError`;
- :func:`platform_env`, :func:`write_demo_registry`, :func:`run_demo`: an isolated platform
  home with its own environment, and the demo (``wxplat demo``) run in it as a subprocess;
- :func:`demo_instance`: all of it, yielding a :class:`DemoInstance` (url, env, home, models).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from weather_assets.backfill import GraphQLError, graphql

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = ROOT / "workspace.yaml"
LOCATION = "weather_platform"  # the code location named in workspace.yaml
TINY_MODEL = "fno-tiny"

# Seconds. The webserver answers and loads the code location in 5-20 s on two cores (more
# when the machine is busy); the demo's six cycles take 1-2 minutes.
WEBSERVER_START_TIMEOUT = 180
DEMO_TIMEOUT = 600


@dataclass(frozen=True)
class DemoInstance:
    """A webserver on a demo instance: its URL, the environment it runs in, the platform home."""

    url: str
    env: dict[str, str]
    home: Path
    models: tuple[str, ...] = ()  # the registry's models (forecast/<model> assets)

    @property
    def dagster_home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    proc: subprocess.Popen | None = None,
    interval: float = 0.5,
    log: Path | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), at most ``timeout`` s.

    ``OSError`` from the predicate counts as not yet; a ``proc`` that exits meanwhile, or the
    deadline, raises ``TimeoutError``/``RuntimeError`` naming ``what`` (and the log's tail).
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"the process exited ({proc.returncode}) while waiting for {what}" + _tail(log)
            )
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}" + _tail(log))
        time.sleep(interval)


def _tail(log: Path | None, chars: int = 3000) -> str:
    """The log's first few error lines (``...Error: ...``) and its last ``chars``."""
    if log is None or not Path(log).exists():
        return ""
    text = Path(log).read_text(errors="replace")
    errors = list(dict.fromkeys(m.group(0) for m in _ERROR_LINE.finditer(text)))[:3]
    first = "".join(f"\n  {line}" for line in errors)
    return (f"; errors:{first}" if first else "") + f"\nlast output ({log}):\n" + text[-chars:]


_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception): .*$", re.M)


_LOCATION_STATUS = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def _server_answers(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
        return response.status == 200


def _location_loaded(url: str, location: str) -> bool:
    """True once ``location`` is loaded; raises if it failed to load."""
    data = graphql(url, _LOCATION_STATUS, timeout=10)["workspaceOrError"]
    if data["__typename"] != "Workspace":
        raise GraphQLError(data.get("message", data["__typename"]))
    for entry in data["locationEntries"]:
        if entry["name"] != location or entry["loadStatus"] != "LOADED":
            continue
        loaded = entry["locationOrLoadError"] or {}
        if loaded.get("__typename") == "PythonError":
            raise RuntimeError(f"code location {location} failed to load: {loaded['message']}")
        return True
    return False


def start_webserver(
    env: dict[str, str],
    *,
    workspace: Path | str = WORKSPACE,
    log: Path | None = None,
    timeout: float = WEBSERVER_START_TIMEOUT,
    location: str | None = LOCATION,
) -> tuple[str, subprocess.Popen]:
    """Start ``dagster-webserver -w <workspace> -h 127.0.0.1 -p <free port>`` with ``env``.

    Waits (at most ``timeout`` s) until ``GET /server_info`` answers and, unless ``location``
    is None, that code location has loaded. Its output goes to ``log`` (default: a file in
    ``DAGSTER_HOME``). Returns ``(url, process)``; stop it with :func:`stop_webserver`.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(log) if log else Path(env["DAGSTER_HOME"]) / f"webserver-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster_webserver",
                "-w",
                str(workspace),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its code server
        )
    try:
        deadline = time.monotonic() + timeout
        wait_until(lambda: _server_answers(url), timeout, f"{url}/server_info", proc=proc, log=log)
        if location is not None:
            left = max(1.0, deadline - time.monotonic())
            wait_until(
                lambda: _location_loaded(url, location),
                left,
                f"code location {location} at {url}",
                proc=proc,
                log=log,
            )
    except BaseException:
        stop_webserver(proc)
        raise
    return url, proc


def stop_webserver(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the webserver's process group (it and its code server), SIGKILL what is left
    after ``timeout`` s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + (timeout if proc.returncode is None else 10)
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)  # anyone left in the group (the code server)?
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.returncode is None:
        proc.wait(timeout=timeout)


@contextmanager
def webserver(env: dict[str, str], **kwargs: Any) -> Iterator[str]:
    """:func:`start_webserver` as a context manager: yields the URL, stops it on exit."""
    url, proc = start_webserver(env, **kwargs)
    try:
        yield url
    finally:
        stop_webserver(proc)


def platform_env(home: Path, registry_dir: Path | None = None) -> dict[str, str]:
    """This process's environment with every ``WXPLAT_*`` variable replaced: one platform home.

    Built like the ``wx_env`` fixture (home, storage and upstream under ``home``), with the
    Dagster instance at ``home/dagster`` and, if given, its own model registry folder.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("WXPLAT_")}
    env.pop("DAGSTER_HOME", None)
    env["WXPLAT_HOME"] = str(home)
    env["DAGSTER_HOME"] = str(home / "dagster")
    if registry_dir is not None:
        env["WXPLAT_REGISTRY_DIR"] = str(registry_dir)
    Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return env


def write_demo_registry(directory: Path) -> Path:
    """A registry with the shipped ``persistence`` baseline and ``fno-tiny``, a small FNO.

    ``fno-tiny`` is the shipped ``fno-demo`` entry (same variables, forcings, grid) with a
    much smaller network and 20 training steps, so the demo trains it in ~15 s on two cores
    (``fno-demo`` takes about a minute). Its artifact resolves to
    ``<directory>/artifacts/fno-tiny.zip``, absent at first: the demo trains it there.
    """
    from model_registry.registry import DEFAULT_REGISTRY_DIR

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEFAULT_REGISTRY_DIR / "persistence.yaml", directory)
    entry = yaml.safe_load((DEFAULT_REGISTRY_DIR / "fno-demo.yaml").read_text())
    entry.update(
        name=TINY_MODEL,
        description="A small Fourier neural operator for UI tests (quick to train).",
        artifact={"uri": f"artifacts/{TINY_MODEL}.zip"},
    )
    entry["training"].update(steps=20, hidden_channels=8, n_modes=[8, 16], n_layers=2)
    (directory / f"{TINY_MODEL}.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    return directory


def run_demo(env: dict[str, str], cycles: int, *, timeout: float = DEMO_TIMEOUT) -> str:
    """``wxplat demo --cycles <cycles>`` in a subprocess with ``env``; its output.

    Raises ``RuntimeError`` with the output's tail if it fails or runs over ``timeout`` s.
    """
    log = Path(env["WXPLAT_HOME"]) / "demo.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "weather_assets.cli", "demo", "--cycles", str(cycles)]
    with open(log, "w") as out:
        try:
            done = subprocess.run(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"`wxplat demo` ran over {timeout:.0f} s" + _tail(log)) from None
    if done.returncode != 0:
        raise RuntimeError(f"`wxplat demo` failed ({done.returncode})" + _tail(log))
    return log.read_text(errors="replace")


@contextmanager
def demo_instance(
    home: Path, *, cycles: int = 6, registry_dir: Path | None = None, log: Path | None = None
) -> Iterator[DemoInstance]:
    """Run the demo into ``home`` (only what is missing), then a webserver on it.

    ``registry_dir`` None: the shipped registry (``fno-demo``, trained into ``artifacts/``
    when absent, as `make demo` does).
    """
    from model_registry.registry import DEFAULT_REGISTRY_DIR, load_registry

    env = platform_env(Path(home), registry_dir)
    run_demo(env, cycles)
    models = tuple(s.name for s in load_registry(registry_dir or DEFAULT_REGISTRY_DIR) if s.enabled)
    url, proc = start_webserver(env, log=log)
    try:
        yield DemoInstance(url=url, env=env, home=Path(home), models=models)
    finally:
        stop_webserver(proc)
