"""Security: localhost by default, no exposure without a password, no file outside the studio's own, no shell."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from jobs_helpers import fast_config, wait_for
from test_app_e2e import free_port

import app as studio_app
from core.runs.launcher import record_run


def test_default_is_localhost_only() -> None:
    args = studio_app.parse_args([])
    assert args.host == "127.0.0.1" and not args.share
    assert studio_app.exposure_auth(args) is None


@pytest.mark.parametrize("flags", [["--host", "0.0.0.0"], ["--host", "192.168.1.10"], ["--share"]])
def test_exposure_without_a_password_is_refused(flags: list[str], monkeypatch) -> None:
    monkeypatch.delenv("STUDIO_USERNAME", raising=False)
    monkeypatch.delenv("STUDIO_PASSWORD", raising=False)
    monkeypatch.delenv("STUDIO_AUTH_FILE", raising=False)
    with pytest.raises(SystemExit, match="without a password"):
        studio_app.launch(studio_app.parse_args(flags), block=False)


def test_exposure_with_credentials_from_env_or_file(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STUDIO_USERNAME", "ana")
    monkeypatch.setenv("STUDIO_PASSWORD", "a long s3cret phrase")
    assert studio_app.exposure_auth(studio_app.parse_args(["--host", "0.0.0.0"])) == [
        ("ana", "a long s3cret phrase")]
    auth_file = tmp_path / "auth"
    auth_file.write_text("# team\nbo:long pw:with:colons\nnot-a-pair\n")
    with pytest.raises(SystemExit, match=rf"{auth_file}:3: expected 'username:password'"):
        studio_app.exposure_auth(studio_app.parse_args(["--share", "--auth-file", str(auth_file)]))
    auth_file.write_text("bo:long pw:with:colons\n")
    assert studio_app.exposure_auth(studio_app.parse_args(["--auth-file", str(auth_file)])) == [
        ("bo", "long pw:with:colons")]


def test_short_passwords_are_refused_when_credentials_are_read(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STUDIO_USERNAME", "ana")
    monkeypatch.setenv("STUDIO_PASSWORD", "s3cret")
    with pytest.raises(SystemExit, match="STUDIO_PASSWORD: the password for 'ana' is 6 characters long; use at "
                                         "least 12"):
        studio_app.exposure_auth(studio_app.parse_args(["--host", "0.0.0.0"]))
    auth_file = tmp_path / "auth"
    auth_file.write_text("bo:a long enough passphrase\ncy:elevenchars\n")
    with pytest.raises(SystemExit, match=rf"{auth_file}:2: the password for 'cy' is 11 characters long; use at "
                                         "least 12"):
        studio_app.exposure_auth(studio_app.parse_args(["--auth-file", str(auth_file)]))


@pytest.fixture
def served(data_dir: Path):
    port = free_port()
    blocks, studio = studio_app.launch(
        studio_app.parse_args(["--port", str(port), "--data-dir", str(data_dir), "--max-upload", "50kb"]),
        block=False)
    yield f"http://127.0.0.1:{port}", studio
    blocks.close()
    studio.registry.dispose()


def fetch(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def upload(base: str, name: str, content: bytes) -> tuple[int, bytes]:
    boundary = "studio-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    status, data, _ = fetch(f"{base}/gradio_api/upload", body,
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return status, data


def test_no_file_outside_the_studio_is_served(served, tmp_path: Path) -> None:
    import json
    import tempfile

    base, studio = served
    cache = Path(os.environ.get("GRADIO_TEMP_DIR", Path(tempfile.gettempdir()) / "gradio"))
    cache.mkdir(parents=True, exist_ok=True)
    inside_cache = cache / f"test-link-{os.getpid()}"
    inside_cache.mkdir(exist_ok=True)
    (inside_cache / "passwd.txt").unlink(missing_ok=True)
    (inside_cache / "passwd.txt").symlink_to("/etc/passwd")
    secret = Path("/etc/passwd").read_bytes()[:20]
    attempts = [
        "/etc/passwd", "../../../../etc/passwd", "..%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd",
        str(studio.paths.db_file), str(Path(__file__).resolve()), str(inside_cache / "passwd.txt"),
        str(studio.paths.datasets_dir),
    ]
    for attempt in attempts:
        for prefix in ("/gradio_api/file=", "/file=", "/static/", "/assets/"):
            status, body, _ = fetch(base + prefix + attempt)
            assert status in (400, 403, 404), (prefix, attempt, status)
            assert secret not in body and b"SQLite format" not in body
    # and an ordinary upload still comes back, so the refusals above are not a broken server
    status, data = upload(base, "note.txt", b"hello")
    assert status == 200
    assert fetch(f"{base}/gradio_api/file={json.loads(data)[0]}")[0] == 200


@pytest.mark.parametrize("name,content", [
    ("evil.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    ("evil.html", b"<html><script>alert(1)</script></html>"),
    ("evil.js", b"alert(1)"),
])
def test_uploaded_markup_is_never_rendered_inline(served, name: str, content: bytes) -> None:
    import json

    base, _ = served
    status, data = upload(base, name, content)
    assert status == 200
    status, body, headers = fetch(f"{base}/gradio_api/file={json.loads(data)[0]}")
    headers = {k.lower(): v for k, v in headers.items()}
    assert status == 200 and body == content
    assert headers["content-disposition"].startswith("attachment")
    assert "svg" not in headers["content-type"] and "html" not in headers["content-type"]


def test_upload_size_limit_is_enforced(served) -> None:
    base, _ = served
    status, _ = upload(base, "big.json", b"x" * 200_000)
    assert status == 413
    assert upload(base, "small.json", b"[]")[0] == 200


def test_hostile_strings_never_reach_a_shell(studio, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = [f"x; touch {marker}", f"$(touch {marker})", f"`touch {marker}`", f"a' && touch {marker} && '"]
    for text in hostile:
        refused = [p for p in studio.launcher.check(fast_config(run_name=text, model=text)) if p.field == "model"]
        assert refused and text in refused[0].message  # Check names the string as given, and runs nothing
        # A config written by hand reaches the job anyway (headless): the job must refuse it the same way.
        run_id, run_dir = record_run(studio.paths, studio.registry, fast_config(run_name=text, model=text,
                                                                                max_steps=1))
        studio.launcher._spawn(run_id, run_dir)
        run = wait_for(studio.registry, run_id, ("completed", "failed", "lost"))
        assert run.name == text and run.status == "failed"
        assert text in (run.error or "")
    time.sleep(0.5)
    assert not marker.exists()
    problems = studio.launcher.check(fast_config(dataset=f"$(touch {marker})"))
    assert any(p.field == "dataset" for p in problems) and not marker.exists()
