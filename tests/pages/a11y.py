"""What every page must have, checked on its HTML: a language, a title, one main landmark,
a label for every input, no inline script or style (the pages' CSP forbids them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

_LABELLED_BY_ITSELF = {"hidden", "submit", "button", "reset", "image"}


@dataclass
class _Page(HTMLParser):
    lang: str | None = None
    title: str = ""
    mains: int = 0
    inputs: list[dict[str, str | None]] = field(default_factory=list)
    label_for: set[str] = field(default_factory=set)
    inline: list[str] = field(default_factory=list)
    _in_title: bool = False
    _label_depth: int = 0

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "title":
            self._in_title = True
        elif tag == "main" or a.get("role") == "main":
            self.mains += 1
        elif tag == "label":
            self._label_depth += 1
            if a.get("for"):
                self.label_for.add(str(a["for"]))
        elif tag in {"input", "select", "textarea"}:
            if tag != "input" or (a.get("type") or "text") not in _LABELLED_BY_ITSELF:
                self.inputs.append({**a, "_wrapped": "yes" if self._label_depth else None})
        elif tag == "script" and "src" not in a:
            self.inline.append("script")
        elif tag == "style":
            self.inline.append("style")
        if "style" in a:
            self.inline.append(f"style attribute on <{tag}>")
        if any(name.startswith("on") for name in a):
            self.inline.append(f"event handler on <{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "label":
            self._label_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def problems(html: str) -> list[str]:
    page = _Page()
    page.feed(html)
    found = []
    if page.lang not in {"ko", "en"}:
        found.append(f"<html lang> is {page.lang!r}")
    if not page.title.strip():
        found.append("no <title>")
    if page.mains != 1:
        found.append(f"{page.mains} main landmarks")
    for control in page.inputs:
        named = control.get("aria-label") or control.get("aria-labelledby") or control["_wrapped"]
        if not named and control.get("id") not in page.label_for:
            found.append(f"unlabelled control {control.get('name') or control.get('id')!r}")
    found += page.inline
    return found
