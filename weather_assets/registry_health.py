"""The model registry as an asset: which entries loaded, which were skipped and why.

A bad registry file never takes the code location down (``load_registry_report`` skips it);
this asset and its check make the skipped entry, and artifacts without a pinned sha256,
visible in the UI.
"""

from pathlib import Path

import dagster as dg

from model_registry.registry import RegistryReport
from weather_assets.forecast.assets import ARTIFACT_GROUP
from weather_assets.keys import REGISTRY_KEY


def build_registry_health(
    report: RegistryReport, directory: Path, owners: list[str] | None = None
) -> tuple[dg.AssetSpec, dg.AssetChecksDefinition]:
    """The registry as an external asset, with a check listing the entries that were skipped.

    The check reports the registry this code location loaded (a fixed entry shows after a
    reload); it never blocks anything, it only makes a skipped model visible in the UI.
    """
    loaded = {name: str(path) for name, path in sorted(report.files.items())}
    skipped = "".join(f"\n- {problem}" for problem in report.problems) or " none."
    spec = dg.AssetSpec(
        key=REGISTRY_KEY,
        group_name=ARTIFACT_GROUP,
        description=(
            f"Model registry entries in {directory}. Loaded: {', '.join(loaded) or 'none'}. "
            f"Unpinned artifacts (data version = file digest): "
            f"{', '.join(report.unpinned) or 'none'}. Skipped (invalid):{skipped}"
        ),
        metadata={"registry_dir": str(directory)},
        kinds={"yaml"},
        owners=owners or [],
    )

    @dg.asset_check(
        asset=REGISTRY_KEY,
        name="valid_entries",
        blocking=False,
        description="Every registry file loads; a failure lists each skipped file and why.",
    )
    def valid_entries() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=not report.problems,
            description=(
                f"{len(loaded)} model(s) loaded, {len(report.problems)} entr"
                f"{'y' if len(report.problems) == 1 else 'ies'} skipped"
            ),
            metadata={
                "loaded": dg.MetadataValue.json(loaded),
                "skipped": dg.MetadataValue.json(list(report.problems)),
                "unpinned_artifacts": dg.MetadataValue.json(report.unpinned),
            },
        )

    return spec, valid_entries
