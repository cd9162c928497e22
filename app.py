"""Starts the studio: `python app.py [--host 127.0.0.1] [--port 7860] [--data-dir DIR]`."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
AUTH_USER_ENV, AUTH_PASSWORD_ENV, AUTH_FILE_ENV = "STUDIO_USERNAME", "STUDIO_PASSWORD", "STUDIO_AUTH_FILE"
ALLOWED_HOSTS_ENV = "STUDIO_ALLOWED_HOSTS"
MIN_PASSWORD_LENGTH = 12
SHORT_PASSWORD = "the password for {user!r} is {length} characters long; use at least {minimum}"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_auth(auth_file: str | None) -> list[tuple[str, str]] | None:
    """Credentials from a file of `user:password` lines or from STUDIO_USERNAME/STUDIO_PASSWORD; never a default."""
    path = auth_file or os.environ.get(AUTH_FILE_ENV)
    if path:
        pairs = []
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            user, sep, password = line.partition(":")
            if not sep or not user.strip() or not password:
                raise SystemExit(f"{path}:{number}: expected 'username:password'")
            if len(password) < MIN_PASSWORD_LENGTH:
                raise SystemExit(f"{path}:{number}: " + SHORT_PASSWORD.format(
                    user=user.strip(), length=len(password), minimum=MIN_PASSWORD_LENGTH))
            pairs.append((user.strip(), password))
        return pairs or None
    user, password = os.environ.get(AUTH_USER_ENV), os.environ.get(AUTH_PASSWORD_ENV)
    if user and password:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise SystemExit(f"{AUTH_PASSWORD_ENV}: " + SHORT_PASSWORD.format(
                user=user, length=len(password), minimum=MIN_PASSWORD_LENGTH))
        return [(user, password)]
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fine-tuning studio")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--data-dir", default=None, help="where runs, datasets and the database live "
                        "(default: $STUDIO_DATA_DIR or ~/.finetune-studio)")
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link (needs auth)")
    parser.add_argument("--auth-file", default=None, help="file of username:password lines")
    parser.add_argument("--max-upload", default="2gb", help="largest upload accepted, e.g. 500mb")
    parser.add_argument("--allow-host", action="append", default=None, metavar="NAME",
                        help="another name the studio is reached by, e.g. a reverse proxy's (repeatable; also "
                        f"${ALLOWED_HOSTS_ENV}, comma-separated); requests naming any other host are refused")
    return parser.parse_args(argv)


def exposure_auth(args: argparse.Namespace) -> list[tuple[str, str]] | None:
    """The credentials to require; refuses (SystemExit) to expose the studio beyond this machine without any."""
    auth = read_auth(args.auth_file)
    if (args.share or not is_loopback(args.host)) and not auth:
        raise SystemExit(
            f"Refusing to listen on {args.host}{' with a share link' if args.share else ''} without a password: "
            f"set {AUTH_USER_ENV} and {AUTH_PASSWORD_ENV}, or pass --auth-file, or use --host 127.0.0.1."
        )
    return auth


def allowed_hosts(args: argparse.Namespace) -> list[str]:
    from_env = [h.strip() for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]
    return (args.allow_host or []) + from_env


def launch(args: argparse.Namespace, *, block: bool = True) -> tuple[object, object]:
    auth = exposure_auth(args)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from core.runs.log_noise import silence_library_noise
    from core.studio import Studio
    from webui.app_ui import CSS, build_app
    from webui.guard import GuardedApp, HostPolicy
    from webui.i18n import i18n
    from webui.logins import LOGIN_NOTE, Credentials

    silence_library_noise()  # chat loads models in this process too
    studio = Studio(args.data_dir)
    studio.set_upload_limit(args.max_upload)  # the same limit for browser uploads and server paths
    studio.start_watchdog()
    studio.start_queue()  # waiting runs start in turn, with or without a browser; a queue left earlier resumes
    app = build_app(studio)
    app.queue(default_concurrency_limit=4)
    policy = HostPolicy(args.host, args.port, allowed_hosts(args))
    # The data directory (database, datasets, runs) is never served; Gradio serves only its own upload cache.
    # Every request passes the guard first; nothing may serve around it (no Node front, no static workers).
    app.launch(server_name=args.host, server_port=args.port, share=args.share,
               auth=Credentials(auth).verify if auth else None, auth_message=LOGIN_NOTE if auth else None,
               max_file_size=args.max_upload, blocked_paths=[str(studio.paths.root)],
               prevent_thread_lock=not block, show_error=False, ssr_mode=False, num_workers=0,
               i18n=i18n(), css=CSS, _app=GuardedApp(policy))
    policy.port = app.server_port or args.port
    if app.share_url:
        policy.add_host(urlsplit(app.share_url).hostname or "")
    return app, studio


def main(argv: list[str] | None = None) -> int:
    launch(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
