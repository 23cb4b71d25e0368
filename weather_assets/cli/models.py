"""Model commands: ``wxplat train``, ``wxplat artifact ...``, ``wxplat registry ...``."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml

from model_registry.architectures import ARCHITECTURES, get_architecture, names_where
from model_registry.artifact import (
    CLI_ARGS,
    DEFAULT_MAX_ENTRY_BYTES,
    MODEL_CONFIG,
    WEIGHTS,
    ArtifactError,
    GridSummary,
    build_artifact,
    inspect_artifact,
    load_artifact,
    sha256_file,
    validate_artifact,
)
from model_registry.onnx_contract import EXPORT_ATOL, EXPORT_RTOL, ONNX_MODEL
from model_registry.registry import (
    RegistryError,
    load_registry,
    load_registry_report,
    load_yaml,
)
from model_registry.spec import ModelSpec, format_duration
from weather_assets.settings import load_settings

app = typer.Typer(help="Model registry, inference artifacts and training.")
artifact_app = typer.Typer(help="Build, validate and inspect inference artifacts.")
registry_app = typer.Typer(help="List and validate the model registry.")
app.add_typer(artifact_app, name="artifact")
app.add_typer(registry_app, name="registry")

RegistryDir = Annotated[
    Path | None,
    typer.Option(
        "--registry", help="Directory of registry YAML entries (default: WXPLAT_REGISTRY_DIR)."
    ),
]


def _registry_dir(registry: Path | None) -> Path:
    """The registry folder a command reads: the option, else the deployment's setting."""
    return registry if registry is not None else load_settings().registry_dir


MaxEntryBytes = Annotated[
    int,
    typer.Option(
        "--max-entry-bytes",
        min=1,
        help="Refuse a zip entry declaring or inflating to more bytes than this (zip bombs).",
    ),
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _spec(name: str, registry: Path):
    try:
        specs = {s.name: s for s in load_registry(registry)}
    except RegistryError as exc:
        _fail(str(exc))
    if name not in specs:
        _fail(f"no model {name!r} in {registry}; registered: {', '.join(specs) or 'none'}")
    return specs[name]


@app.command()
def train(
    model_name: Annotated[
        str,
        typer.Argument(
            help=f"Registry name of a {'/'.join(names_where(lambda a: a.trainable))} model."
        ),
    ],
    start: Annotated[str, typer.Option(help="First training time (UTC), e.g. 2025-11-01.")],
    end: Annotated[str, typer.Option(help="End of training times (exclusive, UTC).")],
    out: Annotated[
        Path | None, typer.Option(help="Artifact zip path (default: the registry's uri).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Optimizer steps (default: the registry's).")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Artifact version (default: UTC now).")
    ] = None,
    evaluate_days: Annotated[
        int,
        typer.Option(
            help="Score 24 h forecasts against persistence on this many held-out days "
            "(starting one day after --end); 0 skips."
        ),
    ] = 0,
    registry: RegistryDir = None,
    track: Annotated[
        bool,
        typer.Option(
            "--track/--no-track",
            help="Log the run to MLflow (WXPLAT_MLFLOW_TRACKING_URI, default a local store "
            "under WXPLAT_HOME); skipped with a note when MLflow is not installed.",
        ),
    ] = True,
    register: Annotated[
        bool,
        typer.Option(
            "--register", help="Register the artifact as a version of the model in MLflow."
        ),
    ] = False,
    alias: Annotated[
        list[str] | None,
        typer.Option(help="With --register: set this alias (e.g. champion); repeatable."),
    ] = None,
    experiment: Annotated[
        str, typer.Option(help="MLflow experiment of the run.")
    ] = "wxplat-training",
) -> None:
    """Train a registry model on simulator history and write its artifact."""
    import pandas as pd

    # torch/neuralop are imported only when training.
    from model_registry.training import (
        evaluate_vs_persistence,
        simulate_history,
        train_registered,
        training_grid,
        training_levels,
    )

    spec = _spec(model_name, _registry_dir(registry))
    try:
        result = train_registered(
            spec,
            start,
            end,
            out=out,
            steps=steps,
            version=version,
            command=shlex.join(["wxplat", *sys.argv[1:]]) if sys.argv else None,
        )
    except ValueError as exc:
        _fail(str(exc))
    grid, levels = training_grid(spec), training_levels(spec)
    typer.echo(
        f"trained {spec.name} in {result.seconds:.1f} s (final loss {result.losses[-1]:.4g})"
    )
    if evaluate_days > 0:
        first = pd.Timestamp(end) + pd.Timedelta(days=1)
        held_out = simulate_history(
            first, first + pd.Timedelta(days=evaluate_days, hours=24), spec.timestep, grid, levels
        )
        scores = evaluate_vs_persistence(
            result.model,
            result.stats,
            held_out,
            result.features,
            timestep=spec.timestep,
            forcings=result.forcings,
        )
        typer.echo(f"24 h RMSE on held-out cycles from {first:%Y-%m-%d} ({evaluate_days} days):")
        typer.echo("| feature | model | persistence | ratio |\n|---|---:|---:|---:|")
        for feature, (model_rmse, pers_rmse) in scores.items():
            ratio = model_rmse / pers_rmse
            typer.echo(f"| {feature} | {model_rmse:.4g} | {pers_rmse:.4g} | {ratio:.3f} |")
    else:
        scores = None
    typer.echo(f"{result.path}")
    typer.echo(f"sha256 {result.sha256}")
    if track or register:
        _track_training(spec, result, scores, evaluate_days, register, alias or [], experiment)


def _track_training(spec, result, scores, evaluate_days, register, aliases, experiment) -> None:
    """Log a finished training to MLflow and optionally register its artifact."""
    from model_registry import tracking

    settings = load_settings()
    if not register and not settings.mlflow_tracking_uri and not tracking.mlflow_installed():
        typer.echo(
            "note: MLflow is not installed; the run is not tracked (pip install -e '.[mlflow]')"
        )
        return
    from model_registry.artifact import load_artifact

    manifest = load_artifact(result.path, expected_sha256=result.sha256).manifest
    params = {
        "model": spec.name,
        "architecture": spec.architecture,
        "artifact_version": manifest.version,
        "artifact_sha256": result.sha256,
        "evaluate_days": evaluate_days,
        **_training_args(result.path),
    }
    try:
        run_id = tracking.log_training(
            settings,
            model_name=spec.name,
            params=params,
            losses=result.losses,
            artifact=result.path,
            scores=scores,
            seconds=result.seconds,
            experiment=experiment,
        )
        typer.echo(f"mlflow run {run_id} at {tracking.tracking_uri(settings)}")
        if register:
            version, sha = tracking.register_artifact(
                settings, result.path, spec.name, run_id=run_id, aliases=aliases
            )
            _echo_registered(spec.name, version, sha, aliases)
    except tracking.TrackingError as exc:
        _fail(str(exc))


def _training_args(path: Path) -> dict[str, Any]:
    """The artifact's ``training_cli_args.yaml`` (the hyper-parameters trained with)."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return load_yaml(zf.read(CLI_ARGS)) or {}


def _echo_registered(name: str, version: str, sha: str, aliases: list[str]) -> None:
    typer.echo(f"registered models:/{name}/{version}")
    for a in aliases:
        typer.echo(f"alias models:/{name}@{a} -> version {version}")
    typer.echo("registry entry:")
    typer.echo(f"  artifact:\n    uri: models:/{name}/{version}\n    sha256: {sha}")


@artifact_app.command("register")
def artifact_register(
    path: Annotated[Path, typer.Argument(help="Artifact zip.")],
    name: Annotated[str, typer.Option(help="Registered model name in MLflow.")],
    alias: Annotated[
        list[str] | None, typer.Option(help="Set this alias (e.g. champion); repeatable.")
    ] = None,
    max_entry_bytes: MaxEntryBytes = DEFAULT_MAX_ENTRY_BYTES,
) -> None:
    """Register a validated artifact zip as a model version in the MLflow model registry."""
    from model_registry import tracking

    try:
        validate_artifact(path, max_entry_bytes=max_entry_bytes)
        version, sha = tracking.register_artifact(load_settings(), path, name, aliases=alias or [])
    except (ArtifactError, tracking.TrackingError) as exc:
        _fail(str(exc))
    _echo_registered(name, version, sha, alias or [])


@artifact_app.command("build")
def artifact_build(
    source: Annotated[
        Path,
        typer.Argument(
            help=f"Directory with {MODEL_CONFIG}, stats/stats.zarr, optional {WEIGHTS} (torch) "
            f"or {ONNX_MODEL} (onnx) and {CLI_ARGS}. {MODEL_CONFIG} holds name, architecture "
            "(one of "
            f"{', '.join(ARCHITECTURES)}), hyperparameters, "
            "(onnx: the tensor contract), input_features, output_features, optional "
            "forcings, timestep and grid (latitude/longitude: first, step, size)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Artifact zip to write.")],
    version: Annotated[
        str | None, typer.Option(help="Artifact version (default: UTC now).")
    ] = None,
) -> None:
    """Package a model directory as an inference artifact."""
    import torch
    import xarray as xr

    config_path = source / MODEL_CONFIG
    if not config_path.is_file():
        _fail(f"{config_path} not found")
    config: dict[str, Any] = load_yaml(config_path.read_text()) or {}
    missing = [k for k in ("name", "architecture", "input_features", "timestep") if k not in config]
    if missing:
        _fail(f"{config_path}: missing field(s) {', '.join(missing)}")
    try:
        get_architecture(str(config["architecture"]))
    except ValueError as exc:
        _fail(f"{config_path}: {exc}")
    stats_path = source / "stats" / "stats.zarr"
    if not stats_path.exists():
        _fail(f"{stats_path} not found")
    weights = None
    if (source / WEIGHTS).is_file():
        try:
            weights = torch.load(source / WEIGHTS, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types; all mean "not a state_dict"
            _fail(f"{source / WEIGHTS} is not a loadable state_dict ({exc})")
    cli_args = {}
    if (source / CLI_ARGS).is_file():
        cli_args = load_yaml((source / CLI_ARGS).read_text()) or {}
    with xr.open_zarr(stats_path) as ds:
        stats = ds.load()
    grid = GridSummary.model_validate(config["grid"]) if config.get("grid") else None
    try:
        path = build_artifact(
            out,
            name=config["name"],
            architecture=config["architecture"],
            hyperparameters=config.get("hyperparameters", {}),
            input_features=config["input_features"],
            output_features=config.get("output_features", config["input_features"]),
            timestep=str(config["timestep"]),
            stats=stats,
            forcings=config.get("forcings") or (),
            state_dict=weights,
            onnx_model=(source / ONNX_MODEL).read_bytes()
            if (source / ONNX_MODEL).is_file()
            else None,
            grid=grid,
            version=version or config.get("version"),
            model_config=config,
            training_cli_args=cli_args,
            training_data=config.get("training_data"),
        )
    except ArtifactError as exc:
        _fail(str(exc))
    typer.echo(f"{path}")
    typer.echo(f"sha256 {sha256_file(path)}")


@artifact_app.command("export-onnx")
def artifact_export_onnx(
    source: Annotated[Path, typer.Argument(help="Torch artifact zip (persistence, fno).")],
    out: Annotated[Path, typer.Option(help="ONNX artifact zip to write.")],
    version: Annotated[
        str | None, typer.Option(help="Version of the new artifact (default: <source>-onnx).")
    ] = None,
    atol: Annotated[
        float, typer.Option(help="Absolute tolerance of onnxruntime vs torch.")
    ] = EXPORT_ATOL,
    rtol: Annotated[
        float, typer.Option(help="Tolerance relative to the largest torch output.")
    ] = EXPORT_RTOL,
    max_entry_bytes: MaxEntryBytes = DEFAULT_MAX_ENTRY_BYTES,
) -> None:
    """Export a torch artifact to an ONNX artifact, checked against torch on one input."""
    from model_registry.architectures import build_model
    from model_registry.onnx_contract import ContractError
    from model_registry.onnx_model import export_onnx, exported_contract

    try:
        loaded = load_artifact(source, max_entry_bytes=max_entry_bytes)
    except ArtifactError as exc:
        _fail(str(exc))
    m = loaded.manifest
    arch = get_architecture(m.architecture.name)
    if arch.builder is None:
        torch_archs = ", ".join(names_where(lambda a: a.builder is not None))
        _fail(f"{source}: architecture {arch.name!r} is not a torch network ({torch_archs})")
    if m.grid is None:
        _fail(f"{source}: the artifact has no grid; an ONNX export is made for one grid")
    net = build_model(
        arch.name, m.architecture.hyperparameters, m.in_channels, len(m.output_features),
        loaded.state_dict or None,
    )  # fmt: skip
    n_lat, n_lon = m.grid.latitude.size, m.grid.longitude.size
    try:
        result = export_onnx(net, m.in_channels, n_lat, n_lon, atol=atol, rtol=rtol)
    except ContractError as exc:
        _fail(f"{source} ({arch.name}): {exc}")
    contract = exported_contract([*m.input_features, *m.forcings], m.output_features)
    check = {"max_abs": result.max_abs, "max_rel": result.max_rel, "atol": atol, "rtol": rtol}
    config = {
        "name": m.name,
        "architecture": "onnx",
        "hyperparameters": contract,
        "input_features": list(m.input_features),
        "output_features": list(m.output_features),
        **({"forcings": list(m.forcings)} if m.forcings else {}),
        "exported_from": {
            "artifact": str(source),
            "sha256": loaded.sha256,
            "version": m.version,
            "architecture": m.architecture.model_dump(mode="json"),
        },
        "export_check": check,
    }
    try:
        path = build_artifact(
            out,
            name=m.name,
            architecture="onnx",
            hyperparameters=contract,
            input_features=m.input_features,
            output_features=m.output_features,
            forcings=m.forcings,
            timestep=m.timestep,
            stats=loaded.stats,
            onnx_model=result.model,
            grid=m.grid,
            version=version or f"{m.version}-onnx",
            model_config=config,
            training_data=m.provenance.get("training_data"),
        )
    except ArtifactError as exc:
        _fail(str(exc))
    typer.echo(f"{path}")
    typer.echo(f"sha256 {sha256_file(path)}")
    typer.echo(
        f"onnxruntime vs torch on {n_lat}x{n_lon}: max abs {result.max_abs:.3g}, max rel "
        f"{result.max_rel:.3g} (tolerance atol {atol:g} + rtol {rtol:g} * max |torch|)"
    )


@artifact_app.command("validate")
def artifact_validate(
    path: Annotated[Path, typer.Argument(help="Artifact zip.")],
    sha256: Annotated[str | None, typer.Option(help="Expected sha256 of the zip.")] = None,
    max_entry_bytes: MaxEntryBytes = DEFAULT_MAX_ENTRY_BYTES,
) -> None:
    """Check an artifact's safety, checksums, completeness and weights."""
    try:
        manifest = validate_artifact(path, expected_sha256=sha256, max_entry_bytes=max_entry_bytes)
    except ArtifactError as exc:
        _fail(str(exc))
    forcings = ", ".join(manifest.forcings) or "none"
    typer.echo(
        f"OK {path}: {manifest.name} {manifest.version} ({manifest.architecture.name}, "
        f"{len(manifest.files)} files, forcings: {forcings}) sha256 {sha256_file(path)}"
    )


@artifact_app.command("inspect")
def artifact_inspect(
    path: Annotated[Path, typer.Argument(help="Artifact zip.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
    max_entry_bytes: MaxEntryBytes = DEFAULT_MAX_ENTRY_BYTES,
) -> None:
    """Print an artifact's manifest and archive facts."""
    try:
        info = inspect_artifact(path, max_entry_bytes=max_entry_bytes)
    except ArtifactError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        typer.echo(yaml.safe_dump(info, sort_keys=False).rstrip())


@registry_app.command("list")
def registry_list(registry: RegistryDir = None) -> None:
    """Table of registered models."""
    try:
        specs = load_registry(_registry_dir(registry))
    except RegistryError as exc:
        _fail(str(exc))
    header = (
        "name",
        "architecture",
        "enabled",
        "timestep",
        "max_lead",
        "members",
        "gpu",
        "artifact",
    )
    rows = [
        (
            s.name,
            s.architecture,
            "yes" if s.enabled else "no",
            format_duration(s.timestep),
            format_duration(s.max_lead_time),
            str(s.members),
            str(s.runtime.gpu),
            s.artifact.uri if s.artifact else "-",
        )
        for s in specs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _artifact_problem(spec: ModelSpec, entry: Path) -> str | None:
    """One sentence when the entry's local artifact is absent or not the pinned sha256."""
    if spec.artifact is None or spec.artifact.is_remote or spec.artifact_location is None:
        return None  # remote artifacts are checked when fetched, not downloaded here
    location = Path(spec.artifact_location)
    if not location.is_file():
        return (
            f"{entry}: field 'artifact.uri' points to {location}, which does not exist; "
            "build the artifact there or fix the uri."
        )
    expected = spec.artifact.sha256
    if expected is not None and (actual := sha256_file(location)) != expected:
        return (
            f"{entry}: field 'artifact.sha256' pins {expected}, but {location} has sha256 {actual}."
        )
    return None


@registry_app.command("validate")
def registry_validate(registry: RegistryDir = None) -> None:
    """Validate every registry entry and its local artifact; exit 1 listing every problem."""
    report = load_registry_report(_registry_dir(registry))
    problems = list(report.problems)
    for spec in report.specs:
        if problem := _artifact_problem(spec, report.files[spec.name]):
            problems.append(problem)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        _fail(f"{len(problems)} problem(s) in {registry}")
    names = ", ".join(s.name for s in report.specs)
    typer.echo(f"OK {len(report.specs)} model(s) in {registry}: {names}")
    if report.unpinned:
        typer.echo(
            f"note: no sha256 pinned for {', '.join(report.unpinned)}: the artifact's file "
            "digest is its data version"
        )
