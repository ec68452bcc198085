"""Debian's nginx running deploy/nginx/ems-hub.conf in front of hubs on this machine.

Only the server name, the ports and the certificate paths of the shipped file are
replaced (each must be there once); the main config around it is the part of
Debian's nginx.conf that includes a site, with every path in the test's folder.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.tls_ca import HubCertificates, make_ca

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy/nginx/ems-hub.conf"
NGINX = "/usr/sbin/nginx"


@dataclass(frozen=True)
class Proxy:
    https_port: int
    http_port: int
    certs: HubCertificates
    directory: Path

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def wss(self, path: str) -> str:
        return f"wss://127.0.0.1:{self.https_port}{path}"

    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.certs.ca)

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def templated(
    text: str, *, hub_ports: list[int], https_port: int, http_port: int, certs: HubCertificates
) -> str:
    """The shipped config with this machine's values; each placeholder must be there."""
    replacements = {
        # One hub, or several (--cluster): a server line each.
        "server 127.0.0.1:8000;": "\n    ".join(f"server 127.0.0.1:{p};" for p in hub_ports),
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen [::]:443 ssl;": "",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "/etc/ssl/ems-hub/fullchain.pem": str(certs.cert),
        "/etc/ssl/ems-hub/privkey.pem": str(certs.key),
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{SHIPPED.name} no longer has {old!r} once"
        text = text.replace(old, new)
    return text


def _main_config(directory: Path, site: Path) -> str:
    """nginx.conf around the site file, as Debian's includes sites-enabled/ in http { }."""
    temp = "".join(
        f"    {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        "daemon off;\nworker_processes 1;\n"
        f"pid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    access_log {directory / 'access.log'};\n{temp}"
        f"    include {site};\n"
        "}\n"
    )


@contextlib.contextmanager
def nginx_proxy(directory: Path, hub_ports: list[int]) -> Iterator[Proxy]:
    """nginx with the shipped site in front of the hubs on ``hub_ports``, until the block ends."""
    assert shutil.which(NGINX) or Path(NGINX).exists(), "nginx is missing: run scripts/setup.sh"
    directory.mkdir(exist_ok=True)
    directory.chmod(0o755)  # nginx's workers (user nobody) read nothing here but traverse
    certs = make_ca(directory)
    https_port, http_port = free_port(), free_port()
    site = directory / "ems-hub.conf"
    site.write_text(
        templated(
            SHIPPED.read_text(),
            hub_ports=hub_ports,
            https_port=https_port,
            http_port=http_port,
            certs=certs,
        )
    )
    conf = directory / "nginx.conf"
    conf.write_text(_main_config(directory, site))
    checked = subprocess.run(
        [NGINX, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr
    process = subprocess.Popen(
        [NGINX, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    proxy = Proxy(https_port, http_port, certs, directory)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, proxy.error_log()
            try:
                answer = httpx.get(f"{proxy.origin}/healthz", verify=proxy.trust(), timeout=2)
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, proxy.error_log()
            time.sleep(0.1)
        yield proxy
    finally:
        process.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
