"""The studio's size presets follow the loaded model: a size over its pixel-frame budget says so."""

from __future__ import annotations


def test_sizes_over_the_models_budget_say_so() -> None:
    from pusa.family import WAN21
    from pusa.service.studio.page import size_choices

    def labels(lang, family, budget=None):
        return {name: label for label, name in size_choices(lang, family, budget)}

    wan = labels("en", WAN21)
    assert "too large" not in wan["832x480 (480p)"] and "too large" not in wan["1280x720 (720p)"]
    assert "too large" in labels("en", WAN21, budget=832 * 480 * 81)["1280x720 (720p)"]
    tiny = labels("ko", WAN21.with_defaults(width=64, height=64, frames=33))  # the bundled model's defaults
    assert "너무 큼" in tiny["832x480 (480p)"] and "너무 큼" not in tiny["64x64 (tiny)"]
