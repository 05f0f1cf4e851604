"""English and Korean interface text of the studio (the seed's users read Korean).

Static labels go through Gradio's ``gr.I18n`` (picked by the browser language, switchable in the
page's settings); text the server renders at run time (status, progress) uses :func:`say` with the
request's Accept-Language. Parameter help in English comes from the settings model's own field
descriptions, so help text and validation rules cannot drift apart.
"""

from __future__ import annotations

from pusa.settings import GenerationSettings

_F = GenerationSettings.model_fields
PREFIX = "pusa_"


def field_range(name: str) -> str:
    """``lo–hi`` of a numeric settings field, read from its own bounds (labels cannot drift from the check)."""
    lo = next(m.ge for m in _F[name].metadata if getattr(m, "ge", None) is not None)
    hi = next(m.le for m in _F[name].metadata if getattr(m, "le", None) is not None)
    return f"{lo}–{hi}"


# key: (English, Korean)
TEXT: dict[str, tuple[str, str]] = {
    "title": ("Pusa studio", "Pusa 스튜디오"),
    "subtitle": ("Short videos from text, an image, several keyframes or a video, with Pusa V1 "
                 "(vectorized timesteps on Wan).",
                 "텍스트, 이미지, 여러 키프레임 또는 비디오로 짧은 영상을 만듭니다 (Wan 기반 Pusa V1, 벡터화된 타임스텝)."),
    "tab_i2v": ("Image→Video", "이미지→비디오"),
    "tab_keyframes": ("Multi-frame→Video", "멀티 프레임→비디오"),
    "tab_v2v": ("Video→Video", "비디오→비디오"),
    "tab_t2v": ("Text→Video", "텍스트→비디오"),
    "tab_history": ("History", "기록"),
    "image": ("Input image", "입력 이미지"),
    "video_in": ("Input video", "입력 비디오"),
    "keyframe": ("Keyframe", "키프레임"),
    "add_image": ("+ Add image", "+ 이미지 추가"),
    "prompt": ("Prompt", "프롬프트"),
    "prompt_ph": ("Describe the video…", "영상을 설명하세요…"),
    "negative_prompt": ("Negative prompt", "네거티브 프롬프트"),
    "noise_multiplier": ("Noise multiplier", "노이즈 배율"),
    "cond_positions": ("Condition positions (latent frames)", "조건 위치 (잠재 프레임)"),
    "noise_multipliers": ("Noise multipliers (one per position)", "노이즈 배율 (위치마다 하나)"),
    "position": ("Position (latent slot)", "위치 (잠재 슬롯)"),
    "lora_alpha": ("LoRA alpha", "LoRA 알파"),
    "lora_alpha_low": ("LoRA alpha (low-noise expert)", "LoRA 알파 (저노이즈 전문가)"),
    "steps": (f"Steps ({field_range('steps')})", f"스텝 수 ({field_range('steps')})"),
    "more": ("More settings", "추가 설정"),
    "seed": ("Seed (-1 = random)", "시드 (-1 = 무작위)"),
    "size": ("Size", "크기"),
    "width": ("Width", "너비"),
    "height": ("Height", "높이"),
    "frames": ("Frames (4k+1; empty = model default)", "프레임 수 (4k+1, 비우면 모델 기본값)"),
    "model_default": ("model default", "모델 기본값"),
    "fps": ("FPS", "FPS"),
    "cfg": ("CFG (guidance)", "CFG (가이던스)"),
    "fit": ("Fit inputs", "입력 맞춤"),
    "generate": ("Generate", "생성"),
    "cancel": ("Cancel", "취소"),
    "result": ("Result", "결과"),
    "download": ("Download MP4", "MP4 다운로드"),
    "reuse": ("Reuse these settings", "이 설정 다시 사용"),
    "reuse_seed": ("Reuse seed", "시드 다시 사용"),
    "timeline": ("Timeline", "타임라인"),
    "examples": ("Examples", "예시"),
    "refresh": ("Refresh", "새로고침"),
    "resubmit": ("Resubmit", "다시 제출"),
    "delete": ("Delete", "삭제"),
    "job_details": ("Job details", "작업 상세"),
    "past_videos": ("Past videos", "지난 영상"),
    "all_jobs": ("All jobs (click a row)", "모든 작업 (행을 클릭)"),
    "help_noise_multiplier": (
        "Lower keeps the image more faithful; higher gives the model freedom (default 0.2).",
        "낮을수록 이미지를 충실히 유지하고, 높을수록 모델에 자유를 줍니다 (기본 0.2)."),
    "help_lora_alpha": (str(_F["lora_alpha"].description),
                        "높을수록 시간적 일관성이 높지만 움직임이 굳습니다. 너무 높으면 멈추거나 무너지고, "
                        "너무 낮으면 일관성을 잃습니다."),
    "help_lora_alpha_low": (str(_F["lora_alpha_low"].description), "Wan2.2 전용: 저노이즈 전문가의 알파"),
    "help_steps": (str(_F["steps"].description), "스텝이 많을수록 디테일이 늘고 시간은 비례해서 늘어납니다."),
    "help_cond_positions": (
        "Latent frame index of each image, comma-separated (e.g. 0,20 for 81 frames: first and last).",
        "각 이미지의 잠재 프레임 번호, 쉼표로 구분 (예: 81프레임에서 0,20 = 처음과 끝)."),
    "help_noise_multipliers": (str(_F["noise_multipliers"].description),
                               "조건마다 하나, 0..1: 낮을수록 조건에 충실, 높을수록 자유롭게."),
    "help_v2v_positions": (
        "Latent frames to keep from the input video, e.g. 0,1,2,3 = its first 13 frames (extension); "
        "0 and the last = start and end (completion).",
        "입력 비디오에서 유지할 잠재 프레임, 예: 0,1,2,3 = 처음 13프레임 (연장), 0과 마지막 = 시작과 끝 (보완)."),
    "help_v2v_multipliers": ("One per position; empty = 0 for each (keep the frames exactly).",
                             "위치마다 하나. 비우면 모두 0 (프레임을 그대로 유지)."),
    "help_seed": (str(_F["seed"].description), "비우거나 -1이면 무작위이며, 사용된 시드가 표시됩니다."),
    "help_cfg": (str(_F["cfg"].description), "분류기 없는 가이던스 배율. 1 = 스텝당 한 번 계산."),
    "help_negative": (str(_F["negative_prompt"].description), "피하고 싶은 내용 (cfg > 1일 때 사용)."),
    "help_frames": ("4k+1 pixel frames (81 = 21 latent frames); empty = the model's default.",
                    "4k+1 픽셀 프레임 (81 = 잠재 21프레임). 비우면 모델 기본값."),
    "help_size": ("Width and height, multiples of 16; empty = the model's default.",
                  "너비와 높이, 16의 배수. 비우면 모델 기본값."),
    "help_fit": (str(_F["fit"].description), "다른 비율의 입력 맞춤: crop(가운데 자르기) 또는 letterbox."),
    "help_fps": (str(_F["fps"].description), "저장되는 영상의 초당 프레임 수."),
    # run-time status text
    "st_loading": ("Model loading", "모델 로딩 중"),
    "st_ready": ("Model ready", "모델 준비됨"),
    "st_failed": ("Model failed to load", "모델 로딩 실패"),
    "st_queued": ("Queued: position {pos} (waits for the model)", "대기 중: {pos}번째 (모델을 기다림)"),
    "st_queued_ready": ("Queued: position {pos}", "대기 중: {pos}번째"),
    "st_running": ("Running: {phase} {step}/{total}", "실행 중: {phase} {step}/{total}"),
    "st_starting": ("Starting…", "시작하는 중…"),
    "st_succeeded": ("Done in {secs:.1f} s — seed {seed}", "완료 ({secs:.1f}초) — 시드 {seed}"),
    "st_failed_job": ("Failed: {error}", "실패: {error}"),
    "st_cancelled": ("Cancelled", "취소됨"),
    "st_cancelling": ("Cancelling…", "취소하는 중…"),
    "st_fix": ("Please fix: {error}", "수정해 주세요: {error}"),
    "ph_text": ("encoding text", "텍스트 인코딩"),
    "ph_encode": ("encoding inputs", "입력 인코딩"),
    "ph_denoise": ("denoising step", "디노이징 스텝"),
    "ph_decode": ("decoding video", "비디오 디코딩"),
    "ph_lora": ("applying LoRA", "LoRA 적용"),
    "ph_waiting": ("starting", "시작"),
    "tl_slot": ("latent slot", "잠재 슬롯"),
    "tl_pixels": ("pixel frames", "픽셀 프레임"),
    "tl_pins": ("Image {n} pins latent slot {pos} = pixel frames {first}–{last}, multiplier {mult}",
                "이미지 {n} → 잠재 슬롯 {pos} = 픽셀 프레임 {first}–{last}, 배율 {mult}"),
}


def i18n_tables() -> dict[str, dict[str, str]]:
    """The ``gr.I18n`` tables: {"en": {...}, "ko": {...}}."""
    # prefixed: Gradio's own translation tables already use plain keys such as "image"
    return {"en": {f"{PREFIX}{k}": v[0] for k, v in TEXT.items()},
            "ko": {f"{PREFIX}{k}": v[1] for k, v in TEXT.items()}}


def lang_of(accept_language: str | None) -> str:
    """'ko' when the browser prefers Korean, else 'en'."""
    first = (accept_language or "").split(",")[0].strip().lower()
    return "ko" if first.startswith("ko") else "en"


def say(key: str, lang: str = "en", **fmt: object) -> str:
    """Run-time text in the request's language."""
    en, ko = TEXT[key]
    text = ko if lang == "ko" else en
    return text.format(**fmt) if fmt else text
