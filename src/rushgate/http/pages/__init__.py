"""The web pages students, applicants and staff use: server-rendered (Jinja2), one
stylesheet, a little JavaScript where a page is better live, Korean and English.

Pages call the same services as the JSON API and never its routes; they authenticate by
the session cookie (``rushgate.http.deps``), and every form that changes something carries
the session's CSRF token. None of them is in the OpenAPI document."""
