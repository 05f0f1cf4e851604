"""``pusa serve``: the web studio and HTTP job service in one process.

Registered by ``pusa/cli.py`` through :func:`add_serve_parser`; ``python -m pusa.service`` runs the
same command on its own.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from pusa.service.config import TOKEN_ENV, ServiceConfig, UploadLimits

log = logging.getLogger(__name__)

_DEFAULT_LIMITS = UploadLimits()


def add_serve_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand (options: network, data, limits, and the engine's model/device)."""
    p = subparsers.add_parser(
        "serve", help="run the web studio (/) and the HTTP job API (/api)",
        description="Serve the Pusa studio at http://HOST:PORT/ and the job API at /api (docs at /api/docs). "
                    "The page answers at once; the model loads in the background.")
    add_serve_options(p)
    p.set_defaults(handler=cmd_serve)


def add_serve_options(p: argparse.ArgumentParser) -> None:
    """The serve options, shared by ``pusa serve`` and ``python -m pusa.service``."""
    from pusa.cli_options import add_engine_options

    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1, this machine "
                                                       "only; use 0.0.0.0 to share, together with a token: $PUSA_TOKEN or --token-file)")
    g.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    g.add_argument("--data-dir", default="pusa-data", metavar="DIR",
                   help="job database, uploads and outputs (default: ./pusa-data)")
    g.add_argument("--token-file", metavar="FILE",
                   help=f"require the access token in FILE on every route (or set ${TOKEN_ENV}); browsers open "
                        f"http://HOST:PORT/?token=TOKEN once. Not accepted as a plain option: other users of the "
                        f"machine could read it in the process list")
    g.add_argument("--token", type=_refuse_token, help=argparse.SUPPRESS)
    g.add_argument("--allowed-host", action="append", default=[], metavar="NAME[:PORT]",
                   help="without a token: also accept requests whose Host header is NAME (repeatable; this server's "
                        "own address and localhost are always accepted)")
    g.add_argument("--allowed-origin", action="append", default=[], metavar="URL",
                   help="without a token: also accept changes (submit, cancel) from pages at URL, e.g. "
                        "http://studio.example:8080 (repeatable)")
    g.add_argument("--no-studio", action="store_true", help="serve only the HTTP API")
    g.add_argument("--models-dir", metavar="DIR",
                   help="offer the model folders and Pusa LoRA files in DIR (and DIR/loras) in a picker: the studio's "
                        "header and POST /api/model switch between them (the old model is released first)")
    lim = p.add_argument_group("upload limits (larger uploads get HTTP 413)")
    lim.add_argument("--max-upload-mb", type=float, default=_DEFAULT_LIMITS.max_bytes / 1024 / 1024,
                     help="per file, in MB (default: %(default)g)")
    lim.add_argument("--max-pixels", type=int, default=_DEFAULT_LIMITS.max_pixels,
                     help="width*height of an image or video frame (default: %(default)d)")
    lim.add_argument("--max-video-seconds", type=float, default=_DEFAULT_LIMITS.max_video_seconds,
                     help="duration of an uploaded video (default: %(default)g)")
    lim.add_argument("--max-images", type=int, default=_DEFAULT_LIMITS.max_images,
                     help="images per job (default: %(default)d)")
    ret = p.add_argument_group("queue and retention (finished jobs are deleted with their files)")
    ret.add_argument("--max-queued", type=int, default=ServiceConfig.max_queued,
                     help="jobs that may wait at once; more get HTTP 429 (default: %(default)d)")
    ret.add_argument("--retention-days", type=float, default=None, metavar="DAYS",
                     help="delete finished jobs older than DAYS (default: keep)")
    ret.add_argument("--retention-max-gb", type=float, default=None, metavar="GB",
                     help="delete the oldest finished jobs while uploads + outputs exceed GB (default: no limit)")
    ret.add_argument("--cache-retention-hours", type=float, default=ServiceConfig.cache_retention_hours,
                     metavar="HOURS", help="delete studio uploads cached by Gradio after HOURS (default: %(default)g; "
                                           "0 keeps them)")
    add_engine_options(p)
    from pusa.parallel.cli import add_parallel_options

    add_parallel_options(p)  # --nproc N: the worker drives N ranks (pusa.parallel.pool)


def _refuse_token(_: str) -> str:
    raise argparse.ArgumentTypeError(f"is not accepted on the command line (other users can read it in the process "
                                     f"list); set ${TOKEN_ENV} or use --token-file FILE")


def read_token(args: argparse.Namespace) -> str | None:
    """The token from ``--token-file`` or ``$PUSA_TOKEN`` (ValueError naming the problem)."""
    if args.token_file:
        path = Path(args.token_file).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--token-file: cannot read {path} ({getattr(e, 'strerror', None) or e})") from None
        if not token:
            raise ValueError(f"--token-file: {path} is empty")
        if path.stat().st_mode & 0o077:
            log.warning("--token-file %s can be read by other users; chmod 600 it", path)
        return token
    return os.environ.get(TOKEN_ENV) or None


def config_from_args(args: argparse.Namespace) -> ServiceConfig:
    """Parsed options -> ServiceConfig (the engine options come from the shared CLI helper)."""
    from pusa.cli_options import engine_kwargs

    engine_options = engine_kwargs(args)
    from pusa.parallel.cli import parallel_service_options

    parallel = parallel_service_options(args)
    if parallel is not None:
        engine_options["parallel"] = parallel
    # the budget is the service's to apply (also while the model loads), so it lives in the config
    max_pixel_frames = engine_options.pop("max_pixel_frames", None)
    return ServiceConfig(
        data_dir=Path(args.data_dir), model=Path(args.model).expanduser() if args.model else None,
        engine_options=engine_options, max_pixel_frames=max_pixel_frames,
        token=read_token(args), allowed_hosts=tuple(args.allowed_host), allowed_origins=tuple(args.allowed_origin),
        limits=UploadLimits(max_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=args.max_pixels,
                            max_video_seconds=args.max_video_seconds, max_images=args.max_images),
        host=args.host, port=args.port, studio=not args.no_studio, max_queued=args.max_queued,
        retention_days=args.retention_days, retention_max_gb=args.retention_max_gb,
        cache_retention_hours=args.cache_retention_hours or None,
        models_dir=Path(args.models_dir) if args.models_dir else None)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted; returns the process exit code."""
    import uvicorn

    from pusa.service.app import create_app

    for name, value in (("--port", args.port), ("--max-images", args.max_images), ("--max-pixels", args.max_pixels),
                        ("--max-queued", args.max_queued), ("--retention-days", args.retention_days),
                        ("--retention-max-gb", args.retention_max_gb)):
        if value is not None and value <= 0:
            log.error("%s must be positive (got %s)", name, value)
            return 2
    if args.cache_retention_hours < 0:
        log.error("--cache-retention-hours must be 0 (keep) or positive (got %s)", args.cache_retention_hours)
        return 2
    if getattr(args, "max_pixel_frames", None) is not None and args.max_pixel_frames <= 0:
        log.error("--max-pixel-frames must be positive (got %s)", args.max_pixel_frames)
        return 2
    if args.max_upload_mb <= 0 or args.max_video_seconds <= 0:
        log.error("--max-upload-mb and --max-video-seconds must be positive")
        return 2
    try:
        config = config_from_args(args)
    except ValueError as e:
        log.error("%s", e)
        return 2
    if config.models_dir is not None and not config.models_dir.is_dir():
        log.error("--models-dir: %s is not a folder", config.models_dir)
        return 2
    if config.models_dir is not None and "parallel" in config.engine_options:
        log.error("--models-dir does not work with --nproc yet: the rank group loads its model once")
        return 2
    if config.token is None and config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without a token ($%s or --token-file): anyone who can reach this port can use "
                    "the studio and API", config.host, TOKEN_ENV)
    app = create_app(config)
    log.info("Pusa studio on http://%s:%d/  (API docs: /api/docs, data: %s, model: %s)", config.host, config.port,
             config.data_dir, config.model_label)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="info",
                                           lifespan="on", timeout_graceful_shutdown=10))
    server.run()
    # uvicorn returns normally both on Ctrl-C and when startup failed (e.g. the data dir is in use)
    return 0 if server.started else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m pusa.service``: the serve command without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="python -m pusa.service", description="Serve the Pusa studio and API.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_serve_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return cmd_serve(args)
