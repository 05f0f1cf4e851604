"""The engine's field problems in the page's language.

The engine speaks English everywhere (CLI, API, logs: one wording to search for and to test). The
studio shows the same problems next to the fields; on the Korean page each known wording is rewritten
into Korean with its numbers kept, and the field is named by its Korean label. A wording with no
entry here stays English rather than being guessed at (``tests/service/test_problem_text.py`` drives
the real settings checks and fails when a common one is missing).
"""

from __future__ import annotations

import re

from pusa.tasks import TASKS

# field -> its Korean label (the names the Korean page shows on the inputs)
FIELD_KO = {
    "prompt": "프롬프트", "prompts": "프롬프트", "negative_prompt": "네거티브 프롬프트", "steps": "스텝 수",
    "cfg": "CFG", "shift": "시프트", "lora_alpha": "LoRA 알파", "lora_alpha_low": "LoRA 알파 (저노이즈)",
    "extra_lora_scale": "추가 LoRA 배율", "seed": "시드", "width": "너비", "height": "높이", "size": "크기",
    "frames": "프레임 수", "fps": "FPS", "fit": "맞춤 방식", "images": "이미지", "video": "비디오",
    "cond_positions": "조건 위치", "noise_multipliers": "노이즈 배율", "window": "창 길이", "overlap": "겹침",
    "overlap_multipliers": "겹침 노이즈 배율", "extend": "연장", "preset": "속도 프리셋", "task": "작업",
    "error": "오류",
}
TASK_KO = {"i2v": "이미지→비디오", "keyframes": "멀티 프레임→비디오", "v2v": "비디오→비디오", "t2v": "텍스트→비디오"}
_TASK = "(?P<task>" + "|".join(TASKS) + ")"

# (English wording, Korean wording with the same named groups)
KOREAN: list[tuple[str, str]] = [
    (r"(?P<v>.+?) is not allowed; expected a value from (?P<lo>\S+) to (?P<hi>\S+)",
     "{v}은(는) 쓸 수 없습니다. {lo}부터 {hi}까지의 값을 넣어 주세요"),
    (r"(?P<v>.+?) is not allowed; expected one of (?P<opts>.+)", "{v}은(는) 쓸 수 없습니다. 가능한 값: {opts}"),
    (r"(?P<v>\d+) is not a multiple of (?P<m>\d+) \(nearest: (?P<a>\d+) or (?P<b>\d+)\)",
     "{v}은(는) {m}의 배수가 아닙니다 (가까운 값: {a} 또는 {b})"),
    (r"(?P<v>\d+) is not a multiple of (?P<m>\d+)", "{v}은(는) {m}의 배수가 아닙니다"),
    (r"(?P<v>\d+) is not of the form (?P<k>\d+)k\+1 \(nearest: (?P<a>\d+) or (?P<b>\d+)\)",
     "{v}은(는) {k}k+1 꼴이 아닙니다 (가까운 값: {a} 또는 {b})"),
    (r"must not be blank", "비워 둘 수 없습니다"),
    (r"(?P<p>.+?) in (?P<s>.+?) is not (?:a number|an integer); write a comma-separated list such as (?P<ex>\S+)",
     "{s}의 {p}은(는) 숫자가 아닙니다. {ex}처럼 쉼표로 구분해 적어 주세요"),
    (r"(?P<v>\S+) is outside the allowed range 0 to 1 \(0 keeps the condition exact\)",
     "{v}은(는) 0~1 범위를 벗어납니다 (0이면 조건을 그대로 유지합니다)"),
    (r"(?P<v>\d+) is outside (?P<lo>\d+) to (?P<hi>\d+) \(latent frames of (?P<f>\d+) pixel frames: (?P<n>\d+)\)",
     "{v}은(는) {lo}~{hi} 범위를 벗어납니다 ({f} 프레임의 잠재 프레임 수: {n})"),
    (r"(?P<n>\d+) positions for (?P<m>\d+) images; give one position per image, in image order",
     "이미지 {m}개에 위치 {n}개: 이미지마다 위치를 하나씩, 이미지 순서대로 적어 주세요"),
    (r"(?P<n>\d+) multipliers for (?P<m>\d+) positions; give exactly one per position",
     "위치 {m}개에 배율 {n}개: 위치마다 정확히 하나씩 적어 주세요"),
    (_TASK + r" takes exactly (?P<n>\d+) image \(got (?P<g>\d+)\)",
     "{task}에는 이미지가 정확히 {n}개 필요합니다 (받은 개수: {g})"),
    (_TASK + r" needs at least (?P<n>\d+) image \(usually 2 or more\)",
     "{task}에는 이미지가 {n}개 이상 필요합니다 (보통 2개 이상)"),
    (_TASK + r" needs an input video", "{task}에는 입력 비디오가 필요합니다"),
    (_TASK + r" has no conditions; leave it empty", "{task}에는 조건이 없습니다. 비워 두세요"),
    (r"v2v needs the latent positions to keep from the video, e\.g\. (?P<ex>\S+) \(first (?P<f>\d+) frames\)",
     "비디오→비디오에는 비디오에서 유지할 잠재 위치가 필요합니다. 예: {ex} (처음 {f} 프레임)"),
    (r"(?P<v>\d+) appears more than once; positions must be unique",
     "{v}이(가) 두 번 이상 나옵니다. 위치는 서로 달라야 합니다"),
    (r"(?P<w>\d+)x(?P<h>\d+) x (?P<f>\d+) frames is (?P<n>[\d,]+) pixel frames per window; this model allows at most "
     r"(?P<max>[\d,]+) \(default (?P<dw>\d+)x(?P<dh>\d+) x (?P<df>\d+)\)",
     "{w}x{h} x {f} 프레임은 창마다 {n} 픽셀 프레임입니다. 이 모델은 최대 {max}까지 허용합니다 "
     "(기본 {dw}x{dh} x {df})"),
    (r"(?P<p>\S+) needs its distillation LoRA, and this model was loaded without it .*; allowed here: (?P<ok>.+)",
     "{p}에는 증류 LoRA가 필요하지만 이 모델은 그것 없이 불러왔습니다. 가능한 값: {ok}"),
    (r"(?P<v>\d+) is not a multiple of 4 \(nearest: (?P<a>\d+) or (?P<b>\d+)\)",
     "{v}은(는) 4의 배수가 아닙니다 (가까운 값: {a} 또는 {b})"),
    (r"is too long \((?P<n>\d+)\); the limit is (?P<max>\d+)", "너무 깁니다 ({n}); 최대 {max}"),
    (r"prompt (?P<i>\d+) is blank", "{i}번째 프롬프트가 비어 있습니다"),
]
_COMPILED = [(re.compile(f"^{en}$"), ko) for en, ko in KOREAN]


def field_label(field: str, lang: str) -> str:
    """``noise_multipliers[1]`` -> ``노이즈 배율[1]`` on the Korean page; the field name itself in English."""
    if lang != "ko":
        return field
    base, bracket, rest = field.partition("[")
    return FIELD_KO.get(base, base) + (bracket + rest if bracket else "")


def problem_message(message: str, lang: str) -> str:
    """One engine problem (without its field) in ``lang``; unknown wordings stay as they are."""
    if lang != "ko":
        return message
    for pattern, ko in _COMPILED:
        m = pattern.match(message.strip())
        if m:
            values = {k: TASK_KO.get(v, v).replace(" or ", ", ") for k, v in m.groupdict().items()}
            return ko.format(**values)
    return message


def problem_line(field: str, message: str, lang: str) -> str:
    """``field: message`` as the page shows it."""
    return f"{field_label(field, lang)}: {problem_message(message, lang)}"


def job_error(error: str, field: str | None, lang: str) -> str:
    """A failed job's error (``"field: message"`` when a setting was refused) as the page shows it."""
    if field and error.startswith(f"{field}: "):
        return problem_line(field, error[len(field) + 2:], lang)
    return problem_message(error, lang)
