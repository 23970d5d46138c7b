"""The mock token endpoint (``manage.py mock_token_endpoint``): real HTTP on loopback only.

Servers bind port 0 (a free port) and run ``serve`` in a thread with ``max_requests`` set
to the number of requests a test sends, so joining the thread means every request has
been answered and printed.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Iterator

import pytest
import requests
from django.core.management import CommandError, call_command

from oauthflow import mock_endpoint
from oauthflow.flavors import FLAVORS, FLAVORS_BY_NUMBER, build_token_request
from oauthflow.mock_endpoint import (
    CREDENTIALS_WARNING,
    SAMPLE_ERROR_REPLY,
    SAMPLE_TOKEN_REPLY,
    MockReply,
    MockTokenServer,
    RemoteHostRefused,
    announce,
    build_server,
    check_host,
    guess_flavor,
    mock_reply_build,
    serve,
)

GUIDE_FIELDS = {
    "grant_type": "authorization_code",
    "scope": "widgets:read widgets:write offline_access",
    "redirect_uri": "https://oauth2.prismatic.io/callback",
    "code": "some-unique-auth-code",
}
# A secret that form-encoding changes, so flavors 1/5 and 2/6 send different bytes.
SPICY_SECRET = "my client/secret:+%"
TIMEOUT = 10  # seconds, for HTTP calls and thread joins


class Running:
    """A server serving in a background thread, printing into ``out``."""

    def __init__(self, server: MockTokenServer, out: io.StringIO) -> None:
        self.server = server
        self.out = out
        self.thread = threading.Thread(target=serve, args=(server,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/oauth2/token") -> str:
        return self.server.url + path

    def finish(self) -> str:
        """Wait for ``max_requests`` to stop the server; the complete printed output."""
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "server did not stop after max_requests"
        return self.out.getvalue()


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def _start(*, status: int = 200, max_requests: int = 1, **reply_options: str | None) -> Running:
        out = io.StringIO()
        server = build_server(
            reply=mock_reply_build(status=status, **reply_options),
            out=out,
            port=0,
            max_requests=max_requests,
        )
        run = Running(server, out)
        running.append(run)
        return run

    yield _start
    for run in running:  # a failed test may leave a server serving
        run.server.shutdown()
        run.thread.join(TIMEOUT)


def blocks(output: str) -> dict[int, str]:
    """Printed request blocks by request number."""
    found = re.split(r"^#(\d+) ", output, flags=re.MULTILINE)
    return {int(number): text for number, text in zip(found[1::2], found[2::2], strict=True)}


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (SPICY_SECRET, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6}),
        # The guide's credentials need no encoding: 5 and 6 send the bytes of 1 and 2.
        ("my-client-secret", {1: 1, 2: 2, 3: 3, 4: 4, 5: 1, 6: 2}),
    ],
)
def test_six_flavors_arrive_printed_named_and_answered(
    start: Callable[..., Running], secret: str, expected: dict[int, int]
) -> None:
    run = start(status=500, max_requests=len(FLAVORS))
    specs = [
        build_token_request(
            flavor, client_id="my-client-id", client_secret=secret, fields=GUIDE_FIELDS
        )
        for flavor in FLAVORS
    ]
    for spec in specs:
        response = requests.post(run.url(), headers=spec.headers, data=spec.body, timeout=TIMEOUT)
        assert response.status_code == 500
        assert response.json() == SAMPLE_ERROR_REPLY

    printed = blocks(run.finish())
    assert sorted(printed) == [1, 2, 3, 4, 5, 6]
    for number, spec in enumerate(specs, start=1):
        block = printed[number]
        assert block.startswith("20")  # the time follows the number
        assert " POST /oauth2/token\n" in block
        assert f"\n{spec.body.decode()}\n" in block  # the body exactly as sent
        for name, value in spec.headers.items():
            assert f"    {name}: {value}\n" in block
        guessed = FLAVORS_BY_NUMBER[expected[number]]
        assert f"  flavor: {guessed.label}" in block
        assert "  -> answered 500 (25 bytes)" in block


def test_basic_credentials_are_shown_decoded(start: Callable[..., Running]) -> None:
    run = start(max_requests=2)
    for number in (1, 5):
        spec = build_token_request(
            FLAVORS_BY_NUMBER[number],
            client_id="my-client-id",
            client_secret=SPICY_SECRET,
            fields=GUIDE_FIELDS,
        )
        requests.post(run.url(), headers=spec.headers, data=spec.body, timeout=TIMEOUT)
    printed = blocks(run.finish())
    assert "decoded: my-client-id:my+client%2Fsecret%3A%2B%25\n" in printed[1]
    assert f"decoded: my-client-id:{SPICY_SECRET}\n" in printed[2]


def test_2xx_default_reply_is_the_guides_sample_token(start: Callable[..., Running]) -> None:
    run = start(status=200)
    response = requests.post(
        run.url("/any/path?x=1"), data={"grant_type": "client_credentials"}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.json() == SAMPLE_TOKEN_REPLY
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert " POST /any/path?x=1\n" in run.finish()


def test_chosen_status_body_and_content_type(start: Callable[..., Running]) -> None:
    body = '{"error": "invalid_grant", "error_description": "code expired"}'
    run = start(status=400, body=body, content_type="application/json;charset=UTF-8")
    response = requests.post(run.url(), data=b"grant_type=x", timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.text == body
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    run.finish()


def test_any_method_and_empty_body(start: Callable[..., Running]) -> None:
    run = start(max_requests=1)
    assert requests.get(run.url("/"), timeout=TIMEOUT).status_code == 200
    block = blocks(run.finish())[1]
    assert " GET /\n" in block
    assert "  body: empty\n" in block
    assert "  flavor: matches none of the six flavors" in block


def test_chunked_body_is_printed_whole(start: Callable[..., Running]) -> None:
    run = start()
    parts = [b"grant_type=authorization_code&code=abc", b"&client_id=id&client_secret=s"]
    response = requests.post(
        run.url(),
        data=iter(parts),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    block = blocks(run.finish())[1]
    assert "\n" + b"".join(parts).decode() + "\n" in block
    assert "flavor: #3:" in block


def test_oversized_body_is_refused_unread(
    start: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mock_endpoint, "MAX_BODY_BYTES", 10)
    run = start()
    response = requests.post(run.url(), data=b"x" * 11, timeout=TIMEOUT)
    assert response.status_code == 413
    assert "larger than 10 bytes, not read" in run.finish()


def test_announce_starts_with_the_credentials_warning() -> None:
    out = io.StringIO()
    server = build_server(reply=mock_reply_build(status=500), out=out, max_requests=6)
    try:
        announce(server)
    finally:
        server.server_close()
    first, second, third, *_ = out.getvalue().splitlines()
    assert first == CREDENTIALS_WARNING
    assert "test credentials" in first
    port = server.server_address[1]
    assert f"listening on http://127.0.0.1:{port}/oauth2/token (any path)" in second
    assert "stops after 6 request(s)" in second
    assert third == 'Answering 500 (application/json): {"error": "server_error"}'


def test_announce_notes_a_body_that_is_not_json() -> None:
    out = io.StringIO()
    server = build_server(reply=mock_reply_build(status=200, body="not json"), out=out)
    try:
        announce(server)
    finally:
        server.server_close()
    assert "not valid JSON" in out.getvalue()


def test_ctrl_c_stops_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    server = build_server(reply=mock_reply_build(status=200), out=out)

    def interrupted(poll_interval: float = 0.5) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(server, "serve_forever", interrupted)
    assert serve(server) == 0
    assert server.socket.fileno() == -1  # closed
    assert out.getvalue() == "Interrupted.\nStopped after 0 request(s).\n"


# --- guess_flavor ----------------------------------------------------------------------


def _spec_case(number: int, secret: str) -> tuple[dict[str, str], bytes]:
    spec = build_token_request(
        FLAVORS_BY_NUMBER[number],
        client_id="my-client-id",
        client_secret=secret,
        fields=GUIDE_FIELDS,
    )
    return spec.headers, spec.body


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
BASIC_PLAIN = "Basic bXktY2xpZW50LWlkOm15LWNsaWVudC1zZWNyZXQ="  # my-client-id:my-client-secret


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        *[(*_spec_case(n, SPICY_SECRET), n) for n in range(1, 7)],
        *[(*_spec_case(n, "my-client-secret"), {5: 1, 6: 2}.get(n, n)) for n in range(1, 7)],
        # Header names and the media type are matched case-insensitively; parameters ignored.
        (
            {"authorization": BASIC_PLAIN, "content-type": "Application/JSON; charset=utf-8"},
            b'{"grant_type":"refresh_token"}',
            2,
        ),
        ({"AUTHORIZATION": "basic " + BASIC_PLAIN[6:], **FORM}, b"grant_type=x", 1),
        # No Content-Type: the body decides.
        ({"Authorization": BASIC_PLAIN}, b'{"grant_type":"x"}', 2),
        ({}, b"client_id=a&client_secret=b&grant_type=x", 3),
        (JSON, json.dumps({"client_id": "a", "client_secret": "b"}).encode(), 4),
        # Basic with a ':' in the secret can only be raw.
        ({"Authorization": "Basic aWQ6YTpi", **FORM}, b"", 5),  # id:a:b
        # Not one of the six.
        (FORM, b"grant_type=client_credentials", None),  # no credentials
        (FORM, b"client_id=public-client&code=abc", None),  # public client, no secret
        ({"Authorization": "Bearer abc", **FORM}, b"grant_type=x", None),
        ({"Authorization": "Basic not-base64!", **FORM}, b"grant_type=x", None),
        ({"Authorization": "Basic bm9jb2xvbg==", **FORM}, b"grant_type=x", None),  # "nocolon"
        ({"Authorization": BASIC_PLAIN, **FORM}, b"client_id=a&client_secret=b", None),  # both
        ({"Authorization": BASIC_PLAIN, "Content-Type": "text/plain"}, b"hi", None),
        ({"Authorization": BASIC_PLAIN, **JSON}, b"{not json", None),
        ({"Authorization": BASIC_PLAIN, **JSON}, b"[1, 2]", None),
    ],
)
def test_guess_flavor(headers: dict[str, str], body: bytes, expected: int | None) -> None:
    assert guess_flavor(headers, body) == expected


# --- building the server and the reply -------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])  # noqa: S104
def test_non_loopback_host_is_refused_with_the_reason(host: str) -> None:
    with pytest.raises(RemoteHostRefused, match=r"not a loopback address.*--allow-remote"):
        check_host(host)
    check_host(host, allow_remote=True)  # no error; nothing is bound here


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    check_host(host)


def test_default_reply_bodies() -> None:
    assert json.loads(mock_reply_build(status=201).body) == SAMPLE_TOKEN_REPLY
    for status in (302, 400, 401, 500, 503):
        assert json.loads(mock_reply_build(status=status).body) == SAMPLE_ERROR_REPLY
    assert mock_reply_build(status=500, body="").body == b""


@pytest.mark.parametrize("status", [100, 199, 600])
def test_reply_status_must_be_final(status: int) -> None:
    with pytest.raises(ValueError, match="200-599"):
        MockReply(status=status, body=b"")


def test_max_requests_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        build_server(reply=mock_reply_build(status=200), out=io.StringIO(), max_requests=0)


# --- the management command ------------------------------------------------------------


class _Announced(io.StringIO):
    """Captures the command's output and signals once it says where it listens."""

    def __init__(self) -> None:
        super().__init__()
        self.listening = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if "listening on" in text:
            self.listening.set()
        return written


def test_command_serves_and_returns_after_max_requests() -> None:
    out = _Announced()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call_command(
                "mock_token_endpoint",
                "--port=0",
                "--status=500",
                "--max-requests=2",
                stdout=out,
            )
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert out.listening.wait(TIMEOUT), out.getvalue()
    port = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", out.getvalue()).group(1)
    spec = build_token_request(
        FLAVORS_BY_NUMBER[4], client_id="id", client_secret="secret", fields=GUIDE_FIELDS
    )
    for _ in range(2):
        response = requests.post(
            f"http://127.0.0.1:{port}/oauth2/token",
            headers=spec.headers,
            data=spec.body,
            timeout=TIMEOUT,
        )
        assert response.status_code == 500
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "call_command did not return after --max-requests"
    assert errors == []
    output = out.getvalue()
    assert output.startswith(CREDENTIALS_WARNING + "\n")
    assert output.count("flavor: #4: credentials in the body, json body") == 2
    assert output.endswith("Stopped after 2 request(s).\n")


def test_command_refuses_a_remote_host_without_allow_remote() -> None:
    with pytest.raises(CommandError, match=r"not a loopback address.*--allow-remote"):
        call_command(
            "mock_token_endpoint",
            "--port=0",
            "--status=200",
            "--host=0.0.0.0",
            stdout=io.StringIO(),
        )


def test_command_rejects_an_interim_status() -> None:
    with pytest.raises(CommandError, match="200-599"):
        call_command("mock_token_endpoint", "--port=0", "--status=101", stdout=io.StringIO())
