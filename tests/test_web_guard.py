"""The web guard: a spoofed Host (DNS rebinding) or a foreign Origin gets 403 on every kind of route, no CORS answer
is ever given, uploads are served nosniff; the browser's and gradio_client's own paths keep working. Logins back
off after 5 failures per client and per user, and compare passwords in constant time."""

from __future__ import annotations

import hmac
import json
import shutil
from pathlib import Path

import httpx
import pytest
from test_app_e2e import free_port

import app as studio_app
from webui.guard import HostPolicy, split_host
from webui.logins import FREE_FAILURES, Credentials, LoginLimiter

PNG = Path(__file__).resolve().parents[1] / "assets" / "sample_dataset" / "images" / "blue_circle_0.png"
PASSWORD = "correct horse battery staple"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def serve(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path, flags: list[str]):
    data_dir = tmp_path_factory.mktemp("guarded") / "studio"
    shutil.copytree(tiny_model_cache, data_dir / "models")
    port = free_port()
    blocks, studio = studio_app.launch(studio_app.parse_args(["--port", str(port), "--data-dir", str(data_dir),
                                                              *flags]), block=False)
    return port, blocks, studio


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path):
    port, blocks, studio = serve(tmp_path_factory, tiny_model_cache, [])
    yield port, studio
    blocks.close()
    studio.close()


@pytest.fixture(scope="module")
def with_login(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("STUDIO_USERNAME", "ana")
    monkeypatch.setenv("STUDIO_PASSWORD", PASSWORD)
    try:
        port, blocks, studio = serve(tmp_path_factory, tiny_model_cache, [])
    finally:
        monkeypatch.undo()
    yield port, blocks
    blocks.close()
    studio.close()


def upload_body(name: str, content: bytes) -> tuple[bytes, str]:
    boundary = "guard-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def routes(client: httpx.Client) -> list[tuple[str, str, dict]]:
    """One request of every kind the app serves: page, config, API info, static, file, upload, queue, REST API,
    login, preflight."""
    body, content_type = upload_body("note.txt", b"hello")
    uploaded = json.loads(client.post("/gradio_api/upload", content=body,
                                      headers={"Content-Type": content_type}).text)[0]
    join = {"data": [], "fn_index": 0, "session_hash": "guardtest", "event_data": None, "trigger_id": None}
    return [
        ("GET", "/", {}), ("GET", "/config", {}), ("GET", "/gradio_api/info", {}), ("GET", "/theme.css", {}),
        ("GET", "/favicon.ico", {}), ("GET", "/manifest.json", {}), ("GET", f"/gradio_api/file={uploaded}", {}),
        ("POST", "/gradio_api/upload", {"content": body, "headers": {"Content-Type": content_type}}),
        ("POST", "/gradio_api/queue/join", {"json": join}),
        ("GET", "/gradio_api/queue/data?session_hash=guardtest", {}),
        ("POST", "/gradio_api/call/list_runs", {"json": {"data": []}}),
        ("POST", "/gradio_api/run/list_runs", {"json": {"data": []}}),
        ("POST", "/login", {"data": {"username": "ana", "password": "x"}}),
        ("OPTIONS", "/gradio_api/upload", {"headers": {"Access-Control-Request-Method": "POST"}}),
    ]


def no_cors(response: httpx.Response) -> bool:
    return not any(k.lower().startswith("access-control-") for k in response.headers)


def test_spoofed_host_and_foreign_origins_are_refused_on_every_route(served) -> None:
    port, _ = served
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        for method, path, options in routes(client):
            headers = options.pop("headers", {})
            for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}",
                         f"localhost:{port + 1}", ""):
                response = client.request(method, path, headers={**headers, "Host": host}, **options)
                assert response.status_code == 403, (method, path, host, response.status_code)
                assert no_cors(response), (method, path, host, response.headers)
            for origin in ("http://evil.example", f"http://evil.example:{port}", "null",
                           f"http://127.0.0.1:{port + 1}", f"http://localhost.evil.example:{port}"):
                response = client.request(method, path, headers={**headers, "Origin": origin}, **options)
                assert response.status_code == 403, (method, path, origin, response.status_code)
                assert no_cors(response) and "other web sites" in response.json()["detail"]
            cross_site = client.request(method, path, headers={**headers, "Sec-Fetch-Site": "cross-site"},
                                        **options)
            assert cross_site.status_code == 403, (method, path)


def test_the_browsers_own_requests_and_gradio_client_still_work(served) -> None:
    from gradio_client import Client

    port, studio = served
    for host in ("127.0.0.1", "localhost"):
        origin = f"http://{host}:{port}"
        page = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
        with httpx.Client(base_url=origin, timeout=30) as client:
            assert client.get("/", headers={"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none"}).status_code == 200
            config = client.get("/config", headers=page)
            assert config.status_code == 200 and no_cors(config)  # same origin: no CORS answer needed, none given
            body, content_type = upload_body("blue.png", PNG.read_bytes())
            uploaded = client.post("/gradio_api/upload", content=body, headers={**page, "Content-Type": content_type})
            assert uploaded.status_code == 200 and no_cors(uploaded)
            image = client.get(f"/gradio_api/file={uploaded.json()[0]}", headers=page)
            assert image.status_code == 200 and image.content == PNG.read_bytes()
            assert image.headers["x-content-type-options"] == "nosniff"  # uploaded images are never sniffed
            assert image.headers["x-frame-options"] == "DENY"
            # a link followed from another site is a plain navigation: it opens the studio
            assert client.get("/", headers={"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "cross-site"}
                              ).status_code == 200
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    assert json.loads(client.predict(api_name="/list_runs")) == []
    client.close()


def test_host_policy_names() -> None:
    policy = HostPolicy("127.0.0.1", 7860, ["studio.example.org"])
    assert policy.allows_host("127.0.0.1:7860") and policy.allows_host("localhost:7860")
    assert policy.allows_host("[::1]:7860") and policy.allows_host("127.0.0.2:7860")
    assert policy.allows_host("LOCALHOST.:7860") and policy.allows_host("studio.example.org")
    assert not policy.allows_host("localhost:7861") and not policy.allows_host("localhost.evil.example:7860")
    assert not policy.allows_host("user@localhost:7860") and not policy.allows_host(None)
    assert policy.allows_origin("https://studio.example.org", "127.0.0.1:7860")  # through its reverse proxy
    assert not policy.allows_origin("http://localhost:7860/path", "localhost:7860")
    assert split_host("[::1]:7860") == ("::1", 7860) and split_host("a:b") == (None, None)
    exposed = HostPolicy("192.168.1.10", 7860)
    assert exposed.allows_host("192.168.1.10:7860") and not exposed.allows_host("192.168.1.11:7860")


def test_a_thousand_wrong_logins_cannot_be_made_in_seconds_and_the_right_one_works_afterwards(with_login) -> None:
    port, blocks = with_login
    limiter = blocks.server_app.guard.limiter
    clock = limiter.clock = FakeClock()  # the back-off is asserted from the server's answers, never slept through
    statuses: dict[int, int] = {}
    waits = set()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for attempt in range(1000):
            response = client.post("/login", data={"username": "ana", "password": f"guess {attempt}"})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 429:
                waits.add(int(response.headers["retry-after"]))
        assert statuses == {400: FREE_FAILURES, 429: 1000 - FREE_FAILURES}  # five were checked, the rest waited
        assert waits == {1}
        assert LoginLimiter.seconds_for(1000) > 24 * 3600  # a thousand checked guesses take more than a day
        refused = client.post("/login", data={"username": "ana", "password": PASSWORD})
        assert refused.status_code == 429  # while it waits, even the right password is not checked
        clock.now += int(refused.headers["retry-after"])
        wrong = client.post("/login", data={"username": "ana", "password": "still wrong"})
        assert wrong.status_code == 400  # checked, failed: the wait doubles
        assert client.post("/login", data={"username": "ana", "password": PASSWORD}).headers["retry-after"] == "2"
        clock.now += 2
        right = client.post("/login", data={"username": "ana", "password": PASSWORD})
        assert right.status_code == 200 and right.json() == {"success": True}
        assert client.get("/config").status_code == 200  # logged in: the cookie works
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as stranger:
            assert stranger.get("/config").status_code == 401


def test_failures_back_off_per_client_and_per_user() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(clock)
    for address in range(FREE_FAILURES):  # one user, attacked from many addresses
        limiter.failed([f"client:10.0.0.{address}", "user:ana"])
    assert limiter.retry_after(["client:10.0.0.99", "user:ana"]) == 1.0
    assert limiter.retry_after(["client:10.0.0.99", "user:bo"]) == 0.0
    for name in range(FREE_FAILURES + 2):  # one address trying many users
        limiter.failed(["client:10.0.0.50", f"user:u{name}"])
    assert limiter.retry_after(["client:10.0.0.50", "user:ana2"]) == 4.0
    limiter.succeeded(["client:10.0.0.50"])
    assert limiter.retry_after(["client:10.0.0.50"]) == 0.0
    clock.now += 3601
    limiter.failed(["user:ana"])  # an hour of quiet: the count starts again
    assert limiter.retry_after(["user:ana"]) == 0.0


def test_an_unknown_user_costs_the_same_as_a_wrong_password(monkeypatch) -> None:
    credentials = Credentials([("ana", PASSWORD), ("bo", "another long passphrase")])
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    assert not credentials.verify("nobody", PASSWORD) and not credentials.verify("ana", "wrong password")
    assert not credentials.verify("bo", PASSWORD)
    assert credentials.verify("ana", PASSWORD)
    assert compared == [(32, 32)] * 4  # one comparison of equal-length digests, whoever is asked for
