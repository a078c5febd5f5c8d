"""TLS verification is on by default for Ivoris and HubSpot, and emulators bind to loopback only.

A local HTTPS server with a self-signed certificate (generated here with `cryptography`) stands
in for a site whose certificate cannot be verified: both clients must refuse it by default, before
a single HTTP request (and with it the API key or token) is sent. The controls show the same
server answers as soon as verification is explicitly switched off, so a refusal really comes from
certificate verification.
"""

import datetime as dt
import http.server
import ipaddress
import json
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hubspot import HubSpot

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_emulators.server import BackgroundServer, ensure_loopback
from biss_emulators.sheets.emulator import SheetsEmulator
from biss_pipeline.domain.hubspot.client import HubSpotClient, HubSpotTransientError
from biss_pipeline.domain.ivoris.client import IvorisClient, IvorisUnavailableError
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.ivoris import IvorisResource

# (status, content type, body) per request path (query string removed)
Route = tuple[int, str, bytes]


class StubServer:
    """A tiny HTTP(S) server on loopback answering canned responses; counts the requests it handled.

    With `tls` (cert file, key file) the socket is wrapped server-side: a client that rejects the
    certificate fails the handshake, and no request reaches `handled`.
    """

    def __init__(self, routes: dict[str, Route] | Callable[[str], Route],
                 tls: tuple[Path, Path] | None = None) -> None:
        self.handled: list[tuple[str, dict[str, str]]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                path = self.path.split("?", 1)[0]
                stub.handled.append((path, dict(self.headers.items())))
                if callable(routes):
                    status, content_type, body = routes(path)
                else:
                    status, content_type, body = routes.get(path, (404, "application/json", b"{}"))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # http.server's naming

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile=str(tls[0]), keyfile=str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "StubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no trust store knows."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _json(body: object) -> Route:
    return 200, "application/json", json.dumps(body).encode()


IVORIS_KEY = "ivoris-tls-test-key-7f3a9c"
HUBSPOT_TOKEN = "pat-tls-test-token-2b8e41"
ROUTES: dict[str, Route] = {
    "/practices": _json([{"id": 1, "name": "Praxis"}]),
    "/crm/v3/pipelines/deals": _json({"results": []}),
}


@pytest.fixture
def https_stub(tmp_path: Path) -> Iterator[StubServer]:
    with StubServer(ROUTES, tls=self_signed_cert(tmp_path)) as server:
        yield server


# -- Ivoris -------------------------------------------------------------------------------------------


def test_ivoris_verifies_tls_by_default(https_stub: StubServer) -> None:
    assert IvorisResource.model_fields["verify_tls"].default is True
    resource = IvorisResource(practice_id="mb", base_url=https_stub.base_url, api_key=IVORIS_KEY,
                              max_attempts=1)
    with resource.client() as client, pytest.raises(IvorisUnavailableError) as failure:
        client.practices()
    assert https_stub.handled == [], "the request (with its API key) went out over an unverified connection"
    assert "ConnectError" in str(failure.value) and IVORIS_KEY not in str(failure.value)

    # control: the same server answers once verification is explicitly off
    with IvorisClient(site="mb", base_url=https_stub.base_url, api_key=IVORIS_KEY, max_attempts=1,
                      verify_tls=False) as client:
        assert client.practices() == [{"id": 1, "name": "Praxis"}]
    assert [path for path, _ in https_stub.handled] == ["/practices"]


# -- HubSpot ------------------------------------------------------------------------------------------


def _sdk_apis(client: HubSpotClient) -> list[Any]:
    return [client._objects_batch, client._objects_search, client._associations, client._properties,
            client._property_batch, client._groups, client._pipelines, client._stages]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the control, on purpose
def test_hubspot_verifies_tls_by_default(https_stub: StubServer) -> None:
    resource = HubSpotResource(access_token=HUBSPOT_TOKEN, host=https_stub.base_url, max_retries=0)
    client = resource.get_client()
    for api in _sdk_apis(client):
        configuration = api.api_client.configuration
        assert configuration.verify_ssl is True, type(api).__name__
        assert configuration.debug is False, type(api).__name__  # debug prints request headers (the token)
    with pytest.raises(HubSpotTransientError) as failure:
        client.list_pipelines()
    assert https_stub.handled == [], "the request (with its token) went out over an unverified connection"
    assert failure.value.status == 0 and HUBSPOT_TOKEN not in str(failure.value)

    # control: the SDK reaches the same server once verification is explicitly off
    sdk = HubSpot(access_token=HUBSPOT_TOKEN, host=https_stub.base_url, verify_ssl=False)
    assert sdk.crm.pipelines.pipelines_api.get_all("deals").results == []
    assert [path for path, _ in https_stub.handled] == ["/crm/v3/pipelines/deals"]


def test_no_code_turns_tls_verification_off() -> None:
    """Neither client has a switch in the pipeline's code paths that disables verification."""
    pattern = re.compile(r"verify(_tls|_ssl)?\s*[=:]\s*(bool\s*=\s*)?False|CERT_NONE"
                         r"|check_hostname\s*=\s*False|_create_unverified_context|\.debug\s*=\s*True")
    offenders = [f"{path.relative_to(PROJECT_ROOT)}:{number}"
                 for path in sorted((PROJECT_ROOT / "biss_pipeline").rglob("*.py"))
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                 if pattern.search(line)]
    assert offenders == []
    assert pattern.search("verify_tls: bool = False") and pattern.search("verify=False")  # the guard can fire


# -- emulators: loopback only unless explicitly allowed ------------------------------------------------

NON_LOOPBACK = ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "8.8.8.8", "fe80::1", "example.org"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    ensure_loopback(host)
    BackgroundServer(app=None, host=host)


@pytest.mark.parametrize("host", NON_LOOPBACK)
def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        ensure_loopback(host)
    with pytest.raises(ValueError, match="loopback"):
        BackgroundServer(app=None, host=host)
    # the explicit opt-in, and only it, lets one through (nothing is started here)
    ensure_loopback(host, allow_non_loopback=True)
    assert BackgroundServer(app=None, host=host, allow_non_loopback=True).host == host


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20"])
def test_every_emulator_refuses_non_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        IvorisEmulator(host=host)
    with pytest.raises(ValueError, match="loopback"):
        HubSpotEmulator(host=host)
    with pytest.raises(ValueError, match="loopback"):
        SheetsEmulator(host=host)
    # opt-in constructs without binding anything
    IvorisEmulator(host=host, allow_non_loopback=True)
    HubSpotEmulator(host=host, allow_non_loopback=True)


def test_emulators_listen_on_loopback_by_default() -> None:
    with IvorisEmulator(size="tiny") as ivoris:
        assert ivoris.base_url.startswith("http://127.0.0.1:")
        assert all(ivoris.site_url(site.site_id).startswith("http://127.0.0.1:") for site in ivoris.sites)
    emulator = HubSpotEmulator().start()
    try:
        assert emulator.base_url.startswith("http://127.0.0.1:")
    finally:
        emulator.stop()
