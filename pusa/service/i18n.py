"""English and Korean interface text of the studio (the seed's users read Korean).

Static labels go through Gradio's ``gr.I18n``; text the server renders at run time (status,
progress, History) uses :func:`say` in the language of :func:`request_lang`. Both follow one choice:
the page header's EN / 한국어 switch puts ``?lang=`` into the page's address (remembered in the
browser's local storage, :mod:`pusa.service.studio.language`), which sets the browser-side locale
before Gradio draws anything and reaches the server as the page address (Referer) of every event;
without a choice, the browser's language decides (Accept-Language). Parameter help in English comes from the settings model's own field
descriptions, so help text and validation rules cannot drift apart.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from pusa.settings import GenerationSettings

_F = GenerationSettings.model_fields
PREFIX = "pusa_"
LANGS = ("en", "ko")  # complete languages: the switch offers these and nothing else
LANG_PARAM = "lang"  # the page address parameter that names the chosen language


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
    "preset": ("Speed preset", "속도 프리셋"),
    "preset_none": ("none: Pusa's own sampling", "없음: Pusa 기본 샘플링"),
    "preset_lightx2v": ("lightx2v: 4 steps, no guidance", "lightx2v: 4스텝, 가이던스 없음"),
    "more": ("More settings", "추가 설정"),
    "seed": ("Seed (-1 = random)", "시드 (-1 = 무작위)"),
    "size": ("Size", "크기"),
    "width": ("Width", "너비"),
    "height": ("Height", "높이"),
    "frames": ("Frames (4k+1; empty = model default)", "프레임 수 (4k+1, 비우면 모델 기본값)"),
    "model_default": ("model default", "모델 기본값"),
    "fps": ("FPS (empty = model default)", "FPS (비우면 모델 기본값)"),
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
    "help_preset": ("the 4-step preset runs the distillation LoRA loaded with the model; choosing a preset sets "
                    "Steps and CFG",
                    "4스텝 프리셋은 모델과 함께 불러온 증류 LoRA를 사용합니다. 프리셋을 고르면 스텝 수와 CFG가 바뀝니다"),
    "help_cond_positions": (
        "Latent frame index of each image, comma-separated; the example shows this model's first and last slot.",
        "각 이미지의 잠재 프레임 번호, 쉼표로 구분. 예시는 이 모델의 처음과 마지막 슬롯입니다."),
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
    "help_negative": (str(_F["negative_prompt"].description), "피하고 싶은 내용 (CFG > 1일 때 사용)."),
    "help_frames": ("4k+1 pixel frames; beyond the model's window the video is made of several windows. "
                    "Empty = the model's default.",
                    "4k+1 픽셀 프레임. 모델 윈도우보다 길면 여러 윈도우로 만듭니다. 비우면 모델 기본값."),
    "help_size": ("Width and height, multiples of 16; empty = the model's default.",
                  "너비와 높이, 16의 배수. 비우면 모델 기본값."),
    "help_fit": (str(_F["fit"].description), "다른 비율의 입력 맞춤: 가운데 자르기 또는 레터박스."),
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
    "tl_pins": ("Keyframe {n} pins latent slot {pos} = pixel frames {first}–{last}, multiplier {mult}",
                "키프레임 {n} → 잠재 슬롯 {pos} = 픽셀 프레임 {first}–{last}, 배율 {mult}"),
    "tl_no_image": ("Position {k} ({pos}): no image for it ({n} uploaded); add an image or remove the position",
                    "위치 {k} ({pos}): 해당 이미지가 없습니다 ({n}개 업로드됨). 이미지를 추가하거나 위치를 지우세요"),
    "tl_outside": ("Keyframe {n}: {pos} is outside 0 to {last} ({frames} frames = {slots} latent slots)",
                   "키프레임 {n}: {pos}은(는) 0~{last} 범위 밖입니다 ({frames}프레임 = 잠재 슬롯 {slots}개)"),
    # length and long video
    "seconds": ("…or seconds", "…또는 초"),
    "help_seconds": ("Type a length in seconds: the frames box gets the nearest length the model can make.",
                     "초 단위 길이를 입력하면 모델이 만들 수 있는 가장 가까운 프레임 수로 바뀝니다."),
    "duration": ("{frames} frames at {fps} fps = {secs:.1f} s", "{frames}프레임, {fps} fps = {secs:.1f}초"),
    "long_video": ("Long video: windows and a prompt per window", "긴 영상: 윈도우와 윈도우별 프롬프트"),
    "prompts": ("Prompts per window (one per line)", "윈도우별 프롬프트 (한 줄에 하나)"),
    "help_prompts": ("Line 1 goes to window 1, line 2 to window 2, …; the last line repeats. Empty: the prompt "
                     "above for every window.",
                     "1번째 줄은 윈도우 1, 2번째 줄은 윈도우 2 …; 마지막 줄이 반복됩니다. 비우면 위 프롬프트를 모든 윈도우에 사용."),
    "window": ("Window (latent frames)", "윈도우 (잠재 프레임)"),
    "help_window": ("Latent frames per window; empty = the model's native window.",
                    "윈도우당 잠재 프레임 수. 비우면 모델 기본 윈도우."),
    "overlap": ("Overlap (latent frames)", "겹침 (잠재 프레임)"),
    "help_overlap": ("Latent frames each window takes over from the previous one; empty = about a fifth of the "
                     "window.", "각 윈도우가 이전 윈도우에서 이어받는 잠재 프레임 수. 비우면 윈도우의 약 1/5."),
    "overlap_multipliers": ("Overlap multipliers", "겹침 배율"),
    "help_overlap_multipliers": ("One per overlap frame, 0..1; empty = 0 (kept exactly).",
                                 "겹침 프레임마다 하나, 0..1. 비우면 0 (그대로 유지)."),
    "color_match": ("Match colours between windows", "윈도우 간 색 맞춤"),
    "help_color_match": ("Against colour drift; switch off when the prompts change the colours on purpose.",
                         "색 드리프트 방지. 프롬프트가 일부러 색을 바꾸면 끄세요."),
    "plan": ("Windows", "윈도우"),
    "plan_span": ("{n} window(s) over {total} latent frames ({frames} frames)",
                  "윈도우 {n}개, 잠재 프레임 {total}개 ({frames}프레임)"),
    "plan_window": ("Window {n}", "윈도우 {n}"),
    "plan_row": ("Window {n}: frames {first}–{last} (latent {start}–{stop})",
                 "윈도우 {n}: 프레임 {first}–{last} (잠재 {start}–{stop})"),
    "plan_bad_overlap": ("Overlap {overlap} must be less than the window ({window})",
                         "겹침 {overlap}은(는) 윈도우({window})보다 작아야 합니다"),
    "plan_too_many": ("{n} windows; at most {max}: use a larger window or fewer frames",
                      "윈도우 {n}개. 최대 {max}개: 윈도우를 키우거나 프레임을 줄이세요"),
    "extend_by": ("Extend by (new frames, multiple of 4)", "연장 (새 프레임 수, 4의 배수)"),
    "help_extend": ("Keep the whole input video and add this many new frames after it; leave the positions "
                    "empty. Empty = ordinary video-to-video.",
                    "입력 비디오 전체를 유지하고 그 뒤에 새 프레임을 추가합니다. 위치는 비워 두세요. 비우면 일반 비디오→비디오."),
    "extend": ("Extend this video", "이 영상 연장"),
    "st_elapsed": ("{elapsed} elapsed", "{elapsed} 경과"),
    "st_waited": ("waiting for {elapsed}", "{elapsed}째 대기 중"),
    "st_left": ("about {left} left", "약 {left} 남음"),
    "q_waiting": ("{n} job(s) waiting", "대기 중인 작업 {n}개"),
    "q_running": ("Running: `{id}` ({task}, {phase}, {pct}%, {elapsed} elapsed)",
                  "실행 중: `{id}` ({task}, {phase}, {pct}%, {elapsed} 경과)"),
    "not_queued": ("Not queued: {reason}", "대기열에 넣지 못했습니다: {reason}"),
    "bad_image": ("This file is not an image we can read: PNG, JPEG, WebP.",
                  "읽을 수 있는 이미지가 아닙니다: PNG, JPEG, WebP 파일을 올려 주세요."),
    "bad_video": ("This file is not a video we can read: MP4, WebM, MOV.",
                  "읽을 수 있는 비디오가 아닙니다: MP4, WebM, MOV 파일을 올려 주세요."),
    "no_video": ("This job has no finished video (any more); pick one that succeeded.",
                 "이 작업에는 완료된 영상이 (더 이상) 없습니다. 성공한 작업을 고르세요."),
    "continue_title": ("Cannot continue", "이어서 할 수 없음"),
    "last_frame_image": ("Use last frame as image", "마지막 프레임을 이미지로"),
    "as_keyframe": ("Use last frame as keyframe", "마지막 프레임을 키프레임으로"),
    # sweeps (studio.sweep): the same request at 2-3 values of one or two settings, side by side
    "sweep": ("Compare settings (sweep)", "설정 비교 (스윕)"),
    "sweep_help": ("Fill one or two rows with 2–3 values each, separated by commas. The settings above run once "
                   "per combination (at most 9 videos), all with the same seed unless you sweep the seed. A "
                   "multiplier per image: 0.2/0.5. The first filled row goes down, the second across.",
                   "한두 줄에 값을 2–3개씩 쉼표로 구분해 입력하세요. 위 설정이 조합마다 한 번씩 실행되며 (최대 9개 영상), "
                   "시드를 비교하지 않으면 모두 같은 시드를 씁니다. 이미지마다 배율을 다르게: 0.2/0.5. 첫 번째 줄은 "
                   "세로, 두 번째 줄은 가로로 놓입니다."),
    "sweep_alpha": ("LoRA alpha values", "LoRA 알파 값"),
    "sweep_mult": ("Noise multiplier values", "노이즈 배율 값"),
    "sweep_steps": ("Steps values", "스텝 수 값"),
    "sweep_seed": ("Seed values", "시드 값"),
    "sweep_run": ("Run sweep", "스윕 실행"),
    "sweep_cancel": ("Cancel sweep", "스윕 취소"),
    "sweep_play": ("Play all together", "모두 함께 재생"),
    "sweep_use": ("Use these settings", "이 설정 사용"),
    "sw_status": ("Sweep of {total}: {done} done · {running} running · {queued} queued · {other} failed or "
                  "cancelled",
                  "스윕 {total}개: 완료 {done} · 실행 중 {running} · 대기 {queued} · 실패 또는 취소 {other}"),
    "sw_cell_queued": ("queued", "대기 중"),
    "sw_cell_running": ("running {pct}%", "실행 중 {pct}%"),
    "sw_cell_gone": ("deleted", "삭제됨"),
    "sw_short_lora_alpha": ("alpha", "알파"),
    "sw_short_noise_multipliers": ("mult", "배율"),
    "sw_short_steps": ("steps", "스텝"),
    "sw_short_seed": ("seed", "시드"),
    # the language switch, the model banner, choices and result lines drawn at run time
    "secs": ("{v:.2f} s", "{v:.2f}초"),
    "load_secs": ("{v:.0f} s", "{v:.0f}초"),
    "banner_defaults": ("{width}x{height}, {frames} frames", "{width}x{height}, {frames}프레임"),
    "comp_loading": ("loading", "로딩 중"),
    "comp_ready": ("ready", "준비됨"),
    "size_custom": ("custom", "직접 입력"),
    "size_portrait": ("portrait", "세로"),
    "size_tiny": ("tiny", "초소형"),
    "size_too_large": ("too large for this model and server", "이 모델과 서버에는 너무 큼"),
    "fit_crop": ("crop", "가운데 자르기"),
    "fit_letterbox": ("letterbox", "레터박스"),
    "seed_line": ("seed **{seed}** · job `{id}` · {timings}", "시드 **{seed}** · 작업 `{id}` · {timings}"),
    "tm_queued": ("queued", "대기"),
    "tm_text": ("text", "텍스트"),
    "tm_encode": ("encode", "인코딩"),
    "tm_lora": ("LoRA", "LoRA"),
    "tm_denoise": ("denoise", "디노이징"),
    "tm_per_step": ("per step", "스텝당"),
    "tm_decode": ("decode", "디코딩"),
    "tm_total": ("total", "합계"),
    "preview": ("Live preview (current estimate)", "실시간 미리보기 (현재 추정)"),
    "preview_step": ("Live preview after step {step}/{total}", "실시간 미리보기: {step}/{total} 스텝 후"),
    # History: headers, job states, notes
    "hd_id": ("id", "작업 번호"),
    "hd_status": ("status", "상태"),
    "hd_task": ("task", "종류"),
    "hd_prompt": ("prompt", "프롬프트"),
    "hd_seed": ("seed", "시드"),
    "hd_created": ("created", "만든 시각"),
    "js_queued": ("queued", "대기 중"),
    "js_running": ("running", "실행 중"),
    "js_succeeded": ("succeeded", "완료"),
    "js_failed": ("failed", "실패"),
    "js_cancelled": ("cancelled", "취소됨"),
    "js_cancelling": ("cancelling", "취소하는 중"),
    "js_deleted": ("deleted", "삭제됨"),
    "h_queued": ("queued job `{id}` (from `{source}`)", "작업 `{id}`을(를) 대기열에 넣었습니다 (`{source}`에서)"),
    "h_action": ("{action}: `{id}`", "{action}: `{id}`"),
    # the model picker (pusa serve --models-dir; studio.models)
    "pick_model": ("Model", "모델"),
    "pick_lora": ("LoRA", "LoRA"),
    "load_model": ("Load", "불러오기"),
    "no_lora": ("no LoRA (the folder's default)", "LoRA 없음 (폴더 기본값)"),
    "model_loading": ("Loading {model}: the queue waits; the other tabs and History stay usable.",
                      "{model} 불러오는 중: 대기열은 기다리며, 다른 탭과 기록은 계속 쓸 수 있습니다."),
    "model_switch_failed": ("The switch failed ({error}); {model} serves again.",
                            "모델 전환 실패 ({error}). {model} 모델이 다시 작업을 처리합니다."),
    "model_not_loaded": ("Not loaded: {reason}", "불러오지 못했습니다: {reason}"),
    "job_model": ("model: {model}", "모델: {model}"),
    "hd_model": ("model", "모델"),
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


def page_lang(page_url: str | None) -> str | None:
    """The language the page's address names (``?lang=ko``), or None when it names none we have."""
    wanted = parse_qs(urlsplit(page_url or "").query).get(LANG_PARAM, [""])[0].lower()
    return wanted if wanted in LANGS else None


def request_lang(request: object) -> str:
    """The language of a Gradio request: the page's ``?lang=`` (its Referer), else Accept-Language, else English."""
    try:
        headers = request.headers  # type: ignore[attr-defined]
        return page_lang(headers.get("referer")) or lang_of(headers.get("accept-language"))
    except Exception:  # no request or one without headers (e.g. an API client): default language
        return "en"


def say(key: str, lang: str = "en", **fmt: object) -> str:
    """Run-time text in the request's language."""
    en, ko = TEXT[key]
    text = ko if lang == "ko" else en
    return text.format(**fmt) if fmt else text
