"""Korean and English: the words of every page, and which language a visitor reads.

The words are JSON files of ``key -> text`` in ``http/locales/``, one per area and
language (``common.ko.json``, ``student.en.json``, ...), merged per language; both languages
hold the same keys and no key is in two areas (a test keeps them so).

The language is the visitor's choice when they made one (the ``rg_lang`` cookie, set by
the switch on every page), else the best match of their browser's ``Accept-Language``,
else Korean."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Final

LOCALES: Final = ("ko", "en")
DEFAULT_LOCALE: Final = "ko"
LANG_COOKIE: Final = "rg_lang"


def load_catalogs() -> dict[str, dict[str, str]]:
    folder = resources.files("rushgate.http").joinpath("locales")
    catalogs: dict[str, dict[str, str]] = {locale: {} for locale in LOCALES}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        _, _, rest = entry.name.partition(".")
        locale = rest.removesuffix(".json")
        if locale in catalogs and rest.endswith(".json"):
            words: dict[str, str] = json.loads(entry.read_text("utf-8"))
            clash = catalogs[locale].keys() & words.keys()
            if clash:
                raise ValueError(f"{entry.name} repeats keys of another area: {sorted(clash)}")
            catalogs[locale].update(words)
    return catalogs


def negotiate(accept_language: str | None, chosen: str | None) -> str:
    """The visitor's language: their choice, else their browser's preference by weight
    (``ko-KR,ko;q=0.9,en;q=0.8``), else the default."""
    if chosen in LOCALES:
        return chosen
    best, best_weight = DEFAULT_LOCALE, -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        language = tag.strip().lower().split("-", 1)[0]
        if language not in LOCALES:
            continue
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight > best_weight:
            best, best_weight = language, weight
    return best


class Translator:
    """``t(key, **values)`` in one language; a missing key shows as itself, so a page
    never fails over a word (the catalog test catches it before release)."""

    def __init__(self, catalog: Mapping[str, str], locale: str) -> None:
        self._catalog = catalog
        self.locale = locale

    def __call__(self, key: str, **values: object) -> str:
        text = self._catalog.get(key, key)
        return text.format(**values) if values else text
