"""The password rules, and the offline breached-password list in both of its forms."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from rushgate.adapters.breached_passwords import (
    LoadedDigests,
    SortedDigestFile,
    open_breached_list,
)
from rushgate.domain.errors import ValidationFailed
from rushgate.domain.passwords import MAX_LENGTH, OPERATOR_MIN_LENGTH, PasswordPolicy, sha1_digest

BREACHED = ["password123", "qwertyuiop", "iloveyou12", "비밀번호123456"]


def hex_sha1(password: str) -> str:
    return hashlib.sha1(password.encode()).hexdigest().upper()


def reason(policy: PasswordPolicy, password: str, **kwargs: object) -> str | None:
    found = policy.problem(password, **kwargs)  # type: ignore[arg-type]
    return None if found is None else found.reason


def test_lengths() -> None:
    policy = PasswordPolicy(min_length=10)
    assert reason(policy, "a" * 9) == "too_short"
    assert reason(policy, "a" * 10) is None
    assert reason(policy, "a" * MAX_LENGTH) is None
    assert reason(policy, "a" * (MAX_LENGTH + 1)) == "too_long"
    # Characters, not bytes: ten Korean syllables are ten.
    assert reason(policy, "가나다라마바사아자차") is None


def test_operators_have_a_lower_floor() -> None:
    policy = PasswordPolicy(min_length=12)
    assert reason(policy, "a" * 8) == "too_short"
    assert reason(policy, "a" * OPERATOR_MIN_LENGTH, chosen_by_operator=True) is None
    assert reason(policy, "a" * (OPERATOR_MIN_LENGTH - 1), chosen_by_operator=True) == "too_short"


def test_not_the_account_itself_whatever_its_case() -> None:
    policy = PasswordPolicy(min_length=10)
    who = ("kim.minsu@example.test", "20260001")
    assert reason(policy, "Kim.Minsu@Example.TEST", identities=who) == "same_as_identity"
    assert reason(policy, "20260001", identities=who, chosen_by_operator=True) == (
        "same_as_identity"
    )
    assert reason(policy, "kim.minsu@example.test!", identities=who) is None


def test_check_names_the_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        PasswordPolicy().check("short", field="new_password")
    assert caught.value.errors == [
        {"field": "new_password", "message": "at least 10 characters", "reason": "too_short"}
    ]


def write_list(path: Path, passwords: list[str], *, counts: bool, sort: bool) -> Path:
    lines = [hex_sha1(p) + (f":{n + 1}" if counts else "") for n, p in enumerate(passwords)]
    if sort:
        lines.sort()
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("counts", [True, False])
def test_loaded_list_any_order(tmp_path: Path, counts: bool) -> None:
    path = write_list(tmp_path / "pwned.txt", BREACHED, counts=counts, sort=False)
    breached = open_breached_list(path)
    assert isinstance(breached, LoadedDigests)
    assert len(breached) == len(BREACHED)
    policy = PasswordPolicy(min_length=10, breached=breached)
    for password in BREACHED:
        assert reason(policy, password) == "breached"
    assert reason(policy, "correct horse battery staple") is None


def test_loaded_list_skips_lines_that_are_no_digest(tmp_path: Path) -> None:
    path = tmp_path / "messy.txt"
    path.write_text(f"# a comment\n\n{hex_sha1('password123').lower()}:5\r\nnot-hex\n")
    breached = LoadedDigests.from_file(path)
    assert len(breached) == 1
    assert sha1_digest("password123") in breached


def test_sorted_file_is_searched_in_place(tmp_path: Path) -> None:
    """Large enough that the search bisects (many 4 KiB blocks), and every listed digest,
    the first and last lines included, is found; unlisted ones are not."""
    rng = random.Random(7)
    listed = [f"pw-{rng.getrandbits(64):x}" for _ in range(20_000)]
    path = write_list(tmp_path / "sorted.txt", listed, counts=True, sort=True)
    on_disk = SortedDigestFile(path)
    lines = path.read_text().split()
    for line in (lines[0], lines[1], lines[len(lines) // 2], lines[-2], lines[-1]):
        assert bytes.fromhex(line.split(":")[0]) in on_disk
    for password in rng.sample(listed, 300):
        assert sha1_digest(password) in on_disk
    for n in range(300):
        assert sha1_digest(f"not-listed-{n}") not in on_disk
    assert b"\x00" * 20 not in on_disk
    assert b"\xff" * 20 not in on_disk
    assert "a string" not in on_disk
    assert b"short" not in on_disk


def test_an_unsorted_large_file_is_refused(tmp_path: Path) -> None:
    path = write_list(
        tmp_path / "unsorted.txt", [f"pw{n}" for n in range(100)], counts=False, sort=False
    )
    with pytest.raises(ValueError, match="sorted"):
        SortedDigestFile(path)
