"""The engine's refusals on the Korean page: the common mistakes a user makes in the studio, checked by
the real settings checks, come out in Korean with their numbers; English stays English."""

from __future__ import annotations

import re

import pytest

from pusa.errors import SettingsError
from pusa.family import WAN21
from pusa.service.studio.problem_text import problem_line
from pusa.settings import GenerationSettings

# technical tokens a Korean page shows as they are (as in test_studio_language_browser.ALLOWED)
ALLOWED = {"LoRA", "CFG", "FPS", "lightx2v", "none", "k", "x"}  # k: 4k+1; x: 832x480

# (settings, images, video): each a mistake made in the studio
MISTAKES = [
    ({"steps": 0}, 0, False), ({"steps": 99}, 0, False), ({"width": 65}, 0, False), ({"frames": 10}, 0, False),
    ({"prompt": " "}, 0, False), ({"cfg": 30.0}, 0, False), ({"lora_alpha": 9.0}, 0, False),
    ({"noise_multipliers": "0.2,0.x"}, 0, False), ({"noise_multipliers": [1.5]}, 0, False),
    ({"task": "keyframes", "cond_positions": "0,30", "noise_multipliers": "0.2,0.3"}, 2, False),
    ({"task": "keyframes", "cond_positions": "0,5,8", "noise_multipliers": "0.2,0.3"}, 2, False),
    ({"task": "keyframes", "cond_positions": "0,0", "noise_multipliers": "0.2,0.2"}, 2, False),
    ({"task": "keyframes", "cond_positions": "0,5"}, 1, False),
    ({"task": "i2v"}, 0, False), ({"task": "v2v"}, 0, False), ({"task": "v2v"}, 0, True),
    ({"task": "t2v", "cond_positions": "0"}, 0, False), ({"task": "t2v", "width": 4096, "height": 4096}, 0, False),
    ({"extend": 6, "task": "v2v"}, 0, True),
]


def _problems(raw: dict, images: int, video: bool) -> list[tuple[str, str]]:
    try:
        GenerationSettings.parse({"prompt": "x", **raw}).resolve(WAN21, n_images=images, has_video=video)
    except SettingsError as e:
        return [(p.field, p.message) for p in e.problems]
    raise AssertionError(f"{raw} was accepted")


@pytest.mark.parametrize("raw, images, video", MISTAKES)
def test_common_mistakes_read_in_korean(raw: dict, images: int, video: bool) -> None:
    for field, message in _problems(raw, images, video):
        korean = problem_line(field, message, "ko")
        english = [w for w in re.findall(r"[A-Za-z]+", korean) if w not in ALLOWED]
        assert not english, f"{field}: {message!r} -> {korean!r} keeps English {english}"
        numbers = set(re.findall(r"\d+", re.sub(r"\b[itv]2v\b", "", message)))  # task names are translated
        assert numbers <= set(re.findall(r"\d+", korean)), (message, korean)  # every number is kept


def test_english_is_the_engines_own_wording() -> None:
    (field, message), = _problems({"steps": 0}, 0, False)
    assert problem_line(field, message, "en") == "steps: 0 is not allowed; expected a value from 1 to 50"
    assert problem_line(field, message, "ko") == "스텝 수: 0은(는) 쓸 수 없습니다. 1부터 50까지의 값을 넣어 주세요"
    assert problem_line("noise_multipliers[1]", "a new wording", "ko") == "노이즈 배율[1]: a new wording"


def test_a_failed_jobs_status_line_reads_in_korean() -> None:
    from pusa.service.studio.render import status_html

    job = {"id": "j1", "status": "failed", "error": "frames: 10 is not of the form 4k+1 (nearest: 9 or 13)",
           "error_field": "frames", "progress": {"fraction": 0.0, "phase": None, "step": 0, "total": 0},
           "timings": {}, "seed": None, "queue_position": None}
    html = status_html("t2v", job, "ko", True)
    assert "프레임 수: 10은(는) 4k+1 꼴이 아닙니다 (가까운 값: 9 또는 13)" in html, html

