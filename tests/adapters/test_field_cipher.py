"""Personal data at rest: AES-GCM sealed values open only with their key and field."""

from __future__ import annotations

import base64
import secrets

import pytest
from pydantic import ValidationError

from rushgate.adapters.security import AesGcmFieldCipher
from rushgate.config import Settings


def _cipher() -> AesGcmFieldCipher:
    return AesGcmFieldCipher(secrets.token_bytes(32))


def test_a_sealed_value_opens_as_itself_and_hides_it() -> None:
    cipher = _cipher()
    sealed = cipher.seal("01012345678", field="phone")
    assert "0101234" not in sealed
    assert cipher.open(sealed, field="phone") == "01012345678"
    assert cipher.seal("01012345678", field="phone") != sealed, "a fresh nonce every time"


def test_a_value_does_not_open_under_another_field_or_key() -> None:
    cipher = _cipher()
    sealed = cipher.seal("2011-03-14", field="birth_date")
    with pytest.raises(ValueError, match="not sealed with this key"):
        cipher.open(sealed, field="phone")
    with pytest.raises(ValueError, match="not sealed with this key"):
        _cipher().open(sealed, field="birth_date")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(ValueError, match="not sealed with this key"):
        cipher.open(tampered, field="birth_date")
    with pytest.raises(ValueError, match="not sealed with this key"):
        cipher.open("plain text", field="birth_date")


def test_the_key_comes_from_the_environment_and_is_checked() -> None:
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    settings = Settings(personal_data_key=key)  # type: ignore[arg-type]
    assert settings.effective_personal_data_key() == key
    for bad in ("short", base64.urlsafe_b64encode(b"x" * 31).decode(), "not base64 !!"):
        with pytest.raises(ValidationError, match="PERSONAL_DATA_KEY"):
            Settings(personal_data_key=bad)  # type: ignore[arg-type]


def test_without_a_key_one_is_derived_from_the_secret_for_this_use_only() -> None:
    one = Settings(secret_key="a" * 40).effective_personal_data_key()  # type: ignore[arg-type]
    two = Settings(secret_key="b" * 40).effective_personal_data_key()  # type: ignore[arg-type]
    assert one != two
    assert one != "a" * 40
    AesGcmFieldCipher.from_secret(one).seal("x")  # a usable 32-byte key
