"""DNS rebinding: the address the guard checked is the address connected to.

A resolver under the test's control (``socket.getaddrinfo``, replaced for names under
``.rebind.test``) answers what each test needs; servers run on 127.0.0.1 only, and the
autouse guard in ``tests/conftest.py`` refuses any connection elsewhere (so a "public"
address below is never reached: connecting to it fails).
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oauthflow import client, netguard
from oauthflow.client import TransportError

PUBLIC = "93.184.216.34"  # checked as public; never reachable from the tests
LOOPBACK = "127.0.0.1"
_real_getaddrinfo = socket.getaddrinfo


class Resolver:
    """Answers for ``*.rebind.test``: each name has a list of answers, used in turn
    (the last one repeats); an answer is a list of addresses, or None (NXDOMAIN).
    Other names: numeric hosts only (nothing here ever asks a real DNS server)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str] | None]] = {}
        self.asked: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not name.endswith(".rebind.test"):
            return _real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        turn = self.asked.count(name)
        self.asked.append(name)
        answers = self.answers.get(name, [None])
        answer = answers[min(turn, len(answers) - 1)]
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, int(port or 0)),
            )
            for address in answer
        ]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    fake = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def production(settings) -> None:
    settings.OAUTH_ALLOW_PRIVATE_NETWORKS = False
    settings.OAUTH_ALLOW_HTTP_LOOPBACK = False


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No proxy and the system CA bundle unless a test sets them; ``origin_environment``
    reads them afresh."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    client.origin_environment.cache_clear()
    yield monkeypatch
    client.origin_environment.cache_clear()


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts and closes
    each at once: whatever reaches it, TLS or not, is counted."""

    def __init__(self) -> None:
        self.sock = socket.create_server((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def test_a_name_rebinding_to_loopback_never_reaches_it(production, environment, resolver, listener):
    """The name answers a public address, then 127.0.0.1, then public again...: before
    the fix the guard checked one answer and urllib3 connected to the next, reaching the
    loopback server on every call. Now each request resolves once and connects to the
    address checked (here refused by the test network guard: nothing on loopback)."""
    resolver.answers["tokens.rebind.test"] = [[PUBLIC], [LOOPBACK]] * 10
    url = f"https://tokens.rebind.test:{listener.port}/token"
    kinds = []
    for _ in range(10):
        with pytest.raises(TransportError) as caught:
            client.post(url, headers={}, body=b"grant_type=refresh_token", timeout=2)
        kinds.append(caught.value.kind)
    assert listener.accepted == 0
    assert len(resolver.asked) == 10  # one resolution per request
    assert kinds == ["connection", "blocked"] * 5  # public: connected there; loopback: refused


def test_metadata_and_webhooks_pass_the_same_pinned_guard(
    production, environment, resolver, listener
):
    resolver.answers["meta.rebind.test"] = [[PUBLIC], [LOOPBACK]] * 5
    resolver.answers["hooks.rebind.test"] = [[PUBLIC], [LOOPBACK]] * 5
    for _ in range(2):
        with pytest.raises(TransportError):
            client.get(f"https://meta.rebind.test:{listener.port}/.well-known/x", timeout=2)
    with pytest.raises(requests.ConnectionError):  # the public address, not loopback
        client.webhook_post(f"https://hooks.rebind.test:{listener.port}/h", body=b"{}", headers={})
    with pytest.raises(TransportError) as caught:  # refused, not retried
        client.webhook_post(f"https://hooks.rebind.test:{listener.port}/h", body=b"{}", headers={})
    assert caught.value.kind == "blocked"
    assert listener.accepted == 0


def test_a_name_with_any_non_public_address_is_refused_unsent(production, environment, resolver):
    resolver.answers["mixed.rebind.test"] = [[PUBLIC, "10.0.0.5"]]
    with pytest.raises(TransportError) as caught:
        client.post("https://mixed.rebind.test/token", headers={}, body=b"")
    assert (caught.value.kind, caught.value.duration_ms) == ("blocked", 0)
    assert "10.0.0.5" in str(caught.value)


def test_an_unresolvable_name_is_a_dns_failure_not_a_refusal(production, environment, resolver):
    with pytest.raises(TransportError) as caught:
        client.post("https://nxdomain.rebind.test/token", headers={}, body=b"")
    assert caught.value.kind == "dns"
    with pytest.raises(client.NameNotResolved):  # a RequestException: the webhook task retries
        client.webhook_post("https://nxdomain.rebind.test/h", body=b"{}", headers={})
    with pytest.raises(netguard.UnresolvableHost):
        netguard.resolve_destination("https://nxdomain.rebind.test/token")


def test_the_next_checked_address_is_tried_when_connecting_fails(
    production, environment, resolver, tls_server, monkeypatch
):
    """Like a normal connection, a second address is used when the first refuses the
    connection (nothing was sent): both were checked by the one resolution."""
    _loopback_counts_as_public(monkeypatch)
    resolver.answers["tokens.rebind.test"] = [["127.0.0.2", LOOPBACK]]
    server = tls_server("tokens.rebind.test")  # on 127.0.0.1: 127.0.0.2 refuses
    reply = client.post(server.url("tokens.rebind.test"), headers={}, body=b"x", timeout=2)
    assert reply.status == 200
    assert len(server.seen) == 1
    assert len(resolver.asked) == 1


# TLS: a certificate authority and a server on 127.0.0.1, its certificate for one name.


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:  # the name only: no IP address, so checking the address would fail
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


class TlsServer:
    """A token endpoint on 127.0.0.1 over TLS; remembers the SNI and Host it saw."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.seen: list[tuple[str | None, str | None]] = []
        self.sni: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        context.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen.append((self.command, self.headers.get("Host")))
                body = b'{"access_token": "at", "token_type": "Bearer"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, host: str, path: str = "/token") -> str:
        return f"https://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def certificate_authority(tmp_path: Path, environment) -> tuple[x509.Certificate, object]:
    key = _key()
    certificate = _certificate("Rebind Test CA", key, "Rebind Test CA", key, ca=True)
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(_pem(certificate))
    environment.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    environment.setenv("CURL_CA_BUNDLE", str(bundle))
    return certificate, key


@pytest.fixture
def tls_server(tmp_path: Path, certificate_authority) -> Iterator[Callable[[str], TlsServer]]:
    """``tls_server(name)``: a server whose certificate is for ``name``, signed by the
    CA that ``REQUESTS_CA_BUNDLE`` names."""
    _, ca_key = certificate_authority
    servers: list[TlsServer] = []

    def start(name: str) -> TlsServer:
        key = _key()
        certificate = _certificate(name, key, "Rebind Test CA", ca_key, ca=False)
        cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        cert_file.write_bytes(_pem(certificate))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        servers.append(TlsServer(cert_file, key_file))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _loopback_counts_as_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TLS server on 127.0.0.1 stands in for a public host: the guard (production
    settings otherwise) takes 127.0.0.1 and 127.0.0.2 as public, nothing else."""
    public = netguard.is_public_address
    monkeypatch.setattr(
        netguard,
        "is_public_address",
        lambda address: address in (LOOPBACK, "127.0.0.2") or public(address),
    )


def test_a_pinned_connection_keeps_the_host_name_for_sni_host_and_certificate(
    production, resolver, tls_server, monkeypatch
):
    """The certificate names the host only (no IP address): the handshake succeeds only
    if it is verified against the name, sent as SNI, while the socket goes to the pinned
    address; the Host header names the host too."""
    _loopback_counts_as_public(monkeypatch)
    resolver.answers["tokens.rebind.test"] = [[LOOPBACK]]
    server = tls_server("tokens.rebind.test")
    reply = client.post(server.url("tokens.rebind.test"), headers={}, body=b"x")
    metadata = client.get(server.url("tokens.rebind.test", "/.well-known/oauth"))
    assert (reply.status, metadata.status) == (200, 200)
    host = f"tokens.rebind.test:{server.port}"
    assert server.seen == [("POST", host), ("GET", host)]
    assert set(server.sni) == {"tokens.rebind.test"}
    assert len(resolver.asked) == 2  # once per request, by the guard only


def test_a_certificate_for_another_name_fails_tls(production, resolver, tls_server, monkeypatch):
    """Connecting to the pinned address does not relax verification: the server at the
    address the name resolves to presents a (trusted) certificate for another name."""
    _loopback_counts_as_public(monkeypatch)
    resolver.answers["tokens.rebind.test"] = [[LOOPBACK]]
    server = tls_server("other.rebind.test")
    with pytest.raises(TransportError) as caught:
        client.post(server.url("tokens.rebind.test"), headers={}, body=b"x")
    assert caught.value.kind == "tls"
    assert server.seen == []


def test_an_untrusted_certificate_fails_tls(production, resolver, tls_server, monkeypatch):
    _loopback_counts_as_public(monkeypatch)
    resolver.answers["tokens.rebind.test"] = [[LOOPBACK]]
    server = tls_server("tokens.rebind.test")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # the system's CAs: the test CA is unknown
    monkeypatch.delenv("CURL_CA_BUNDLE")
    client.origin_environment.cache_clear()
    with pytest.raises(TransportError) as caught:
        client.post(server.url("tokens.rebind.test"), headers={}, body=b"x")
    assert caught.value.kind == "tls"


# Proxies from the environment: the proxy resolves the name, so the target is checked by
# name (and by what it resolves to here, when it does) and the proxy's rules do the rest.


class Proxy(Listener):
    """An HTTP proxy on 127.0.0.1 that records each request line and refuses it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        super().__init__()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.lines.append(conn.makefile("rb").readline().decode().strip())
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def proxy(environment) -> Iterator[Proxy]:
    server = Proxy()
    environment.setenv("HTTPS_PROXY", f"http://{LOOPBACK}:{server.port}")
    yield server
    server.close()


def test_through_a_proxy_the_proxy_resolves_and_private_targets_are_refused_by_name(
    production, resolver, proxy
):
    resolver.answers["inside.rebind.test"] = [["10.1.2.3"]]
    for url in (
        "https://127.0.0.1/token",
        "https://[::1]/token",
        "https://localhost/token",
        "https://metadata.localhost/token",
        "https://169.254.169.254/latest",
        "https://inside.rebind.test/token",  # resolves here to a private address
    ):
        with pytest.raises(TransportError) as caught:
            client.post(url, headers={}, body=b"")
        assert caught.value.kind == "blocked", url
    assert proxy.lines == []
    # Local DNS may not know the name (egress through the proxy only): the proxy decides.
    with pytest.raises(TransportError) as caught:
        client.post("https://api.rebind.test/token", headers={}, body=b"", timeout=2)
    assert caught.value.kind == "connection"  # the proxy's 403
    assert [line.rsplit(" ", 1)[0] for line in proxy.lines] == ["CONNECT api.rebind.test:443"]


@pytest.mark.parametrize(
    "address", ["64:ff9b::7f00:1", "64:ff9b::a00:1", "2002:7f00:1::", "::ffff:127.0.0.1"]
)
def test_ipv6_forms_carrying_a_private_ipv4_address_are_not_public(address):
    from oauthflow.netguard import is_public_address

    assert not is_public_address(address)
