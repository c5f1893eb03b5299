"""python-gearman's TLS host entries (dicts with keyfile, certfile, ca_certs) on geartrain.compat.gearman."""

from __future__ import annotations

import pytest
from tlshelpers import Pki, tls_settings

import geartrain.compat.gearman as gearman


def _host(pki: Pki, port: int) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "keyfile": str(pki.ops.key),
        "certfile": str(pki.ops.certificate),
        "ca_certs": str(pki.ca_file),
    }


def test_client_and_admin_over_tls_with_a_client_certificate(secure_server, pki: Pki) -> None:
    server = secure_server(tls=tls_settings(pki, verify_client="required"))
    hosts = [_host(pki, server.port)]
    client = gearman.GearmanClient(hosts)
    try:
        request = client.submit_job("compat-tls", "payload", background=True)
        assert request.state == gearman.JOB_CREATED
    finally:
        client.shutdown()
    admin = gearman.GearmanAdminClient(hosts)
    try:
        assert admin.ping_server() >= 0
        (row,) = [row for row in admin.get_status() if row["task"] == "compat-tls"]
        assert row["queued"] == 1
    finally:
        admin.shutdown()


def test_hosts_must_share_their_tls_settings(pki: Pki) -> None:
    with pytest.raises(gearman.GearmanError, match="same TLS settings"):
        gearman.GearmanClient([_host(pki, 1), "127.0.0.1:2"])
    plain = gearman.GearmanClient([{"host": "127.0.0.1", "port": 3, "ca_certs": str(pki.ca_file)}])
    assert plain._tls is None  # as python-gearman: TLS only with all three files
