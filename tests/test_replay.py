"""Copy as curl replays the exact bytes; Postman exports hold no secret."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote_plus

import pytest

from oauthflow.chain import run_token_chain
from oauthflow.exceptions import ProviderError
from oauthflow.models import TokenRequest
from oauthflow.records import last_failed_chain
from oauthflow.replay import POSTMAN_SCHEMA, curl_command, postman_collection
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

# No space: curl --data-urlencode sends a space as "+" where the portal sends %20 (both
# decode the same); every other byte must match.
SECRET = "se+cr/et:50%off"
CODE = "code-with/odd+chars"
FIELDS = {
    "grant_type": "authorization_code",
    "scope": "widgets:read widgets:write offline_access",
    "redirect_uri": "https://oauth2.prismatic.io/callback",
    "code": CODE,
    "code_verifier": "verifier-0123456789",
}


class _Capture(BaseHTTPRequestHandler):
    seen: list[tuple[str | None, str | None, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append(
            (self.headers.get("Authorization"), self.headers.get("Content-Type"), body)
        )
        payload = b'{"error":"invalid_client"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def failed_chain(capture):
    port = capture.server_address[1]
    app = AppFactory(
        client_id="my client",
        client_secret=SECRET,
        token_url=f"http://127.0.0.1:{port}/oauth2/token",
    )
    with pytest.raises(ProviderError):
        run_token_chain(app=app, fields=FIELDS, kind="exchange")
    return app


def test_copy_as_curl_sends_the_same_bytes_as_the_portal(capture, failed_chain):
    original = list(capture.seen)
    capture.seen.clear()
    records = list(TokenRequest.objects.order_by("id"))
    assert [r.flavor for r in records] == [1, 2, 3, 4, 5, 6]
    for record in records:
        command = curl_command(record)
        for secret in (SECRET, CODE, "verifier-0123456789", quote_plus(SECRET)):
            assert secret not in command
        secret = quote_plus(SECRET, safe="") if record.flavor in (1, 2) else SECRET
        env = {
            "CLIENT_SECRET": secret,
            "CODE": CODE,
            "CODE_VERIFIER": "verifier-0123456789",
            "PATH": "/usr/bin:/bin",
        }
        subprocess.run(  # noqa: S603 - our own rendering, run against loopback
            ["/bin/bash", "-c", command + " --silent --output /dev/null"],
            env=env,
            check=True,
            timeout=30,
        )
    assert capture.seen == original


def test_postman_collection_of_the_last_failed_chain(failed_chain):
    attempts = last_failed_chain(app=failed_chain)
    collection = postman_collection(attempts, name="x")
    text = json.dumps(collection)
    assert collection["info"]["schema"] == POSTMAN_SCHEMA
    assert len(collection["item"]) == 6
    assert {v["key"] for v in collection["variable"]} == {"client_secret", "code", "code_verifier"}
    for secret in (SECRET, CODE, "verifier-0123456789"):
        assert secret not in text
    first = collection["item"][0]["request"]
    assert first["auth"]["basic"][1]["value"] == "{{client_secret}}"
    assert {"key": "code", "value": "{{code}}", "type": "text"} in first["body"]["urlencoded"]
