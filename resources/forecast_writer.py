"""Forecast outputs: where a rollout's lead times are written, one class per format.

Every output has the same lifecycle (as anemoi-inference's outputs):

1. ``open(layout)``: the forecast's shape is known (analysis time, features, grid, every lead
   time, members); the output lays out whatever it writes into;
2. ``write_initial_state(state)``: for outputs that store lead time 0 (the zarr forecast
   store does not: the analysis is a store of its own);
3. ``write_step(step)``: one lead time, in the caller's thread, as soon as it is computed;
4. ``close()``: every lead time is written; the output marks itself complete.

An output whose run failed is never closed, so it is never marked complete; the caller's
staging (``resources.storage.Storage.staged_zarrs``) discards it. Outputs are chosen by name
from ``OUTPUTS`` (``forecast_output("zarr", ...)``).

``ZarrForecastOutput`` writes the platform's forecast stores in the platform's one zarr
format (``resources.storage.ZARR_FORMAT``) with consolidated metadata, the store's
"complete" marker. At ``open`` it writes the whole forecast's metadata and coordinates once,
from a lazy template (``xarray.Dataset.to_zarr(compute=False)``), and opens each variable's
zarr array once; each lead time is then one numpy slice per variable written into its chunk
(``array[0, k] = values``), without building a dataset or reopening the store per step. The
store is identical, metadata and bytes, to ``to_zarr`` of the whole computed forecast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from resources.storage import ZARR_FORMAT
from weather_assets.forecast.dataset import (
    ForecastLayout,
    forecast_encoding,
    forecast_template,
    variable_features,
)
from weather_assets.forecast.rollout import RolloutStep

if TYPE_CHECKING:
    import zarr


class ForecastOutput(ABC):
    """Where a forecast goes: ``open``, ``write_initial_state``, ``write_step``, ``close``."""

    @abstractmethod
    def open(self, layout: ForecastLayout) -> None:
        """Lay the output out for ``layout``, before the first step is computed."""

    def write_initial_state(self, state: np.ndarray) -> int:
        """Store lead time 0, ``state`` (member, state_feature, lat, lon); bytes written.

        Outputs that hold only forecast lead times (the default) store nothing.
        """
        return 0

    @abstractmethod
    def write_step(self, step: RolloutStep) -> int:
        """Store one lead time of every member; the bytes of data written."""

    @abstractmethod
    def close(self) -> None:
        """Finish the output once every lead time is written (marks it complete)."""


class ZarrForecastOutput(ForecastOutput):
    """Zarr stores: one for all members (``member`` dim when several), or one per member.

    ``stores`` are zarr URLs (any fsspec URL, with ``storage_options``) or zarr stores.
    """

    def __init__(
        self, stores: Sequence[Any], *, storage_options: dict[str, Any] | None = None
    ) -> None:
        self.stores = list(stores)
        self.storage_options = storage_options or None
        self._layout: ForecastLayout | None = None
        self._ensemble = False
        self._index: dict[str, np.ndarray] = {}
        self._groups: list[zarr.Group] = []
        self._arrays: list[dict[str, zarr.Array]] = []
        self._written: set[int] = set()

    def open(self, layout: ForecastLayout) -> None:
        import zarr  # in the forecast step only, not when the code location loads

        if not self.stores or len(self.stores) not in (1, layout.members):
            raise ValueError(
                f"{len(self.stores)} stores for {layout.members} members; give 1 or one each"
            )
        # One store holds every member (a member dim when there are several); one store per
        # member holds that member without a member dim, like per-member raw inputs.
        self._ensemble = len(self.stores) == 1 and layout.members > 1
        template = forecast_template(layout, ensemble=self._ensemble)
        encoding = forecast_encoding(template)
        self._index = variable_features(layout.features)
        extra = {"storage_options": self.storage_options} if self.storage_options else {}
        for store in self.stores:
            # Metadata and coordinates only; consolidated at close (the complete marker).
            template.to_zarr(
                store,
                mode="w",
                compute=False,
                consolidated=False,
                zarr_format=ZARR_FORMAT,
                encoding=encoding,
                storage_options=self.storage_options,
            )
            group = zarr.open_group(store, mode="r+", zarr_format=ZARR_FORMAT, **extra)
            self._groups.append(group)
            self._arrays.append({name: group[name] for name in self._index})
        self._layout = layout
        self._written = set()

    def write_step(self, step: RolloutStep) -> int:
        layout = self._opened()
        k = layout.lead_index(step.lead_time)
        expected = (layout.members, len(layout.features), len(layout.latitude))
        if step.state.ndim != 4 or step.state.shape[:3] != expected:
            raise ValueError(
                f"step {step.step} state {step.state.shape} does not match the layout "
                f"(members, features, latitude, longitude) = "
                f"{(*expected, len(layout.longitude))}"
            )
        nbytes = 0
        for i, arrays in enumerate(self._arrays):
            if len(self._arrays) > 1:
                state = step.state[i]  # one store per member
            else:
                state = step.state if self._ensemble else step.state[0]
            for name, index in self._index.items():
                values = _variable_values(state, index)
                arrays[name][0, k] = values  # (time, lead_time, ...): exactly one chunk
                nbytes += values.nbytes
        self._written.add(k)
        return nbytes

    def close(self) -> None:
        import zarr

        layout = self._opened()
        missing = [lt for k, lt in enumerate(layout.lead_times) if k not in self._written]
        if missing:
            raise ValueError(
                f"lead times {missing} were never written; the forecast stays incomplete"
            )
        for group in self._groups:
            # What xarray's to_zarr(consolidated=True) does last: the store is complete.
            zarr.consolidate_metadata(group.store, zarr_format=ZARR_FORMAT)

    def _opened(self) -> ForecastLayout:
        if self._layout is None:
            raise RuntimeError("the forecast output is not open: call open(layout) first")
        return self._layout


def _variable_values(state: np.ndarray, index: np.ndarray) -> np.ndarray:
    """One variable of ``state`` (..., state_feature, lat, lon) in the dataset's layout."""
    if index.ndim == 0:
        return state[..., int(index), :, :]
    values = state[..., index, :, :]  # a copy, levels in the dataset's order
    if (index < 0).any():
        values[..., index < 0, :, :] = np.nan  # a level the variable lacks
    return values


OUTPUTS: dict[str, type[ForecastOutput]] = {"zarr": ZarrForecastOutput}


def forecast_output(name: str, *args: Any, **kwargs: Any) -> ForecastOutput:
    """The output class registered as ``name``, built with ``args``/``kwargs``."""
    try:
        cls = OUTPUTS[name]
    except KeyError:
        raise KeyError(
            f"unknown forecast output {name!r}; known outputs: {sorted(OUTPUTS)}"
        ) from None
    return cls(*args, **kwargs)
