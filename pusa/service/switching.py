"""Switching the served model (``pusa serve --models-dir DIR``): checks at the edge, then the host loads.

Why a separate room: the host (:class:`pusa.service.engine.ModelHost`) knows how to load and
release a model; this class knows which models a client may ask for (the listing of DIR, by id,
never a path), which LoRA fits which model, and turns a choice into the same loader the server
started with. Everything that can be checked before the old model is released is checked here,
so a typo never costs the running model.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from pusa.errors import InputError, PusaError, SettingsError
from pusa.service.config import ServiceConfig
from pusa.service.engine import Engine, ModelHost, ProgressFn
from pusa.service.models_dir import LoraEntry, ModelEntry, ModelsListing, describe, inside, scan
from pusa.settings_parsing import excerpt

log = logging.getLogger(__name__)

LoaderFactory = Callable[[ServiceConfig], Callable[[ProgressFn], Engine]]
STARTUP_ID = "startup"  # the model the server started with, when it is not one of DIR's folders
# LoRA options of the startup command that a picked model does not inherit (they were chosen for that model)
_STARTUP_LORA_OPTIONS = ("lora", "lora_low", "extra_lora", "extra_lora_low")


def model_switcher(config: ServiceConfig, host: ModelHost,
                   loader_factory: LoaderFactory | None = None) -> "ModelSwitcher | None":
    """The picker of ``--models-dir`` (None without one); loaders come from ``loader_factory``, by
    default the real pipeline's, the same way the startup model's did."""
    if config.models_dir is None:
        return None
    from pusa.service.engine import pipeline_loader

    return ModelSwitcher(config, host, loader_factory or pipeline_loader)


class ModelSwitcher:
    """The picker's server side: the listing, the current choice, and switching by id."""

    def __init__(self, config: ServiceConfig, host: ModelHost, loader_factory: LoaderFactory):
        assert config.models_dir is not None
        self.config = config
        self.root = Path(config.models_dir)
        self.host = host
        self.factory = loader_factory
        self.startup = self._startup_entry()
        host.model_id = self.startup.id if self.startup is not None else None
        host.redact = self.redact

    def redact(self, text: str) -> str:
        """An error as clients may see it: folders inside DIR named relative to it (no server path)."""
        for root in sorted({str(self.root), str(self.root.resolve())}, key=len, reverse=True):
            text = text.replace(root + "/", "").replace(root, "<models dir>")
        return text

    def _startup_entry(self) -> ModelEntry | None:
        """The model the server starts with, as a listing entry (its folder name when it lies in DIR)."""
        from pusa.loading.layout import detect_layout

        try:
            if self.config.model is not None:
                path = Path(self.config.model)
            else:
                from pusa.bundled import default_model_dir

                path = default_model_dir()
            layout = detect_layout(path)
        except PusaError as e:  # the start itself will fail and say so; the picker can still load others
            log.warning("the startup model is not offered in the picker: %s", e)
            return None
        in_dir = path.resolve().parent == self.root.resolve() and inside(path, self.root)
        return describe(path.name if in_dir else STARTUP_ID, layout, path)

    def listing(self) -> ModelsListing:
        """DIR's models and LoRAs, with the startup model first when it is not one of them."""
        found = scan(self.root)
        if self.startup is not None and found.model(self.startup.id) is None:
            return ModelsListing((self.startup, *found.models), found.loras)
        return found

    def public(self) -> dict[str, Any]:
        """``GET /api/models``: what can be picked, what is loaded, and the load's progress."""
        listing = self.listing()
        snap = self.host.snapshot()
        return {"models": [m.public() for m in listing.models], "loras": [x.public() for x in listing.loras],
                "current": {"model": self.host.model_id, "lora": self.host.lora_id, **self.host.record()},
                "state": snap["state"], "components": snap["components"], "error": snap["error"],
                "switch_error": snap["switch_error"]}

    def switch(self, model_id: Any, lora_id: Any = None) -> None:
        """Check the choice (SettingsError naming ``model`` or ``lora`` and the allowed values), then
        start the background load (ModelBusy while a model loads)."""
        listing = self.listing()
        entry = listing.model(model_id) if isinstance(model_id, str) else None
        if entry is None:
            allowed = ", ".join(m.id for m in listing.models) or "(none found)"
            raise SettingsError.single("model", f"{excerpt(str(model_id))} is not one of: {allowed}")
        lora = self._lora(listing, entry, lora_id)
        options = dict(self.config.engine_options)
        if entry.id != STARTUP_ID or lora is not None:
            for key in _STARTUP_LORA_OPTIONS:
                options[key] = None
            options["lora"] = lora.path if lora is not None else None
        if entry.id != STARTUP_ID:
            options["decoder"] = None  # a light decoder reads its own model's latent space only
        self._precheck(entry, options)
        config = replace(self.config, model=entry.path, engine_options=options)
        self.host.switch(self.factory(config), entry.id, entry.id, lora.id if lora is not None else None)
        log.info("switching the model to %s (LoRA %s)", entry.id, lora.id if lora is not None else "none")

    def _lora(self, listing: ModelsListing, entry: ModelEntry, lora_id: Any) -> LoraEntry | None:
        if lora_id is None or lora_id == "":
            return None
        fits = listing.loras_for(entry.wan22)
        lora = next((x for x in fits if x.id == lora_id), None) if isinstance(lora_id, str) else None
        if lora is None:
            kind = "a high/low-noise pair folder" if entry.wan22 else "a single LoRA file"
            allowed = ", ".join(x.id for x in fits) or "(none found)"
            raise SettingsError.single("lora", f"{excerpt(str(lora_id))} is not one of the LoRAs for {entry.id} "
                                               f"({kind}): {allowed}, or null for none")
        return lora

    def _precheck(self, entry: ModelEntry, options: dict[str, Any]) -> None:
        """What the loader would refuse first (layout, LoRA files), before the old model is released."""
        from pusa.loading.layout import detect_layout
        from pusa.loading.lora import lora_files_per_expert

        try:
            layout = detect_layout(entry.path)
            lora_files_per_expert(layout, options.get("lora"), options.get("lora_low"), options.get("extra_lora"),
                                  options.get("extra_lora_low"), bool(options.get("use_default_lora", True)))
        except InputError as e:
            raise SettingsError.single("lora" if options.get("lora") else "model", self.redact(str(e))) from None
        except PusaError as e:
            raise SettingsError.single("model", self.redact(str(e))) from None
