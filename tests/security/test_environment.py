"""TLS and the secret from the environment alone (``geartrain.security.environment``): what the ``gearman`` and
``gearadmin`` entry points and the manager's workers use, having no security flags."""

from __future__ import annotations

import ssl

import pytest
from tlshelpers import Pki

from geartrain.errors import GearmanError
from geartrain.security.environment import (
    error_reason,
    libgearman_tls_from_environment,
    secret_from_environment,
    ssl_from_environment,
)

VARIABLES = ("GEARTRAIN_SSL", "GEARTRAIN_SECRET", "GEARMAND_CA_CERTIFICATE", "GEARMAN_CLIENT_PEM", "GEARMAN_CLIENT_KEY")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("value", "wanted"), [("1", True), (" Yes ", True), ("on", True), ("0", False), ("", False)])
def test_geartrain_ssl_asks_for_tls(monkeypatch: pytest.MonkeyPatch, value: str, wanted: bool) -> None:
    monkeypatch.setenv("GEARTRAIN_SSL", value)
    assert ssl_from_environment() is wanted


def test_without_geartrain_ssl_there_is_no_tls() -> None:
    assert ssl_from_environment() is False


def test_the_secret_is_geartrain_secret_and_empty_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    assert secret_from_environment() is None
    monkeypatch.setenv("GEARTRAIN_SECRET", "")
    assert secret_from_environment() is None
    monkeypatch.setenv("GEARTRAIN_SECRET", "s3cret")
    assert secret_from_environment() == "s3cret"


def test_libgearman_variables_configure_the_context(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.setenv("GEARMAND_CA_CERTIFICATE", str(pki.ca_file))
    monkeypatch.setenv("GEARMAN_CLIENT_PEM", str(pki.ops.certificate))
    monkeypatch.setenv("GEARMAN_CLIENT_KEY", str(pki.ops.key))
    context = libgearman_tls_from_environment()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [entry["subject"] for entry in context.get_ca_certs()] != []


def test_an_unreadable_file_is_a_gearman_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """(``ssl`` does not say which file it could not read: ``[Errno 2] No such file or directory``.)"""
    monkeypatch.setenv("GEARMAND_CA_CERTIFICATE", "/nonexistent/ca.pem")
    with pytest.raises(GearmanError, match=r"^cannot set up TLS: .*No such file"):
        libgearman_tls_from_environment()


def test_error_reason_names_the_file_of_an_os_error() -> None:
    assert error_reason(FileNotFoundError(2, "No such file or directory", "/x")) == "/x: No such file or directory"
    assert error_reason(ValueError("bad")) == "bad"
