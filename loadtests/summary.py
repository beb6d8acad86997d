"""Print the summary a scenario wrote at the end of a run (``--summary-file``).

    .venv/bin/python loadtests/summary.py loadtests/results/applicants-….json

Latencies are exact (every request's own time, nearest-rank percentiles), not Locust's
rounded buckets. ``req/s`` is a row's requests over the time from its first request's
start to its last answer. The last line is the run as a row of the README's table.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of samples at or below."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summarize(name: str, samples: list[tuple[float, float, bool]]) -> dict[str, Any]:
    """One row from ``(start unix time, response time ms, failed)`` samples."""
    times = sorted(rt for _, rt, _ in samples)
    failures = sum(1 for *_, failed in samples if failed)
    first = min((s for s, _, _ in samples), default=0.0)
    last = max((s + rt / 1000 for s, rt, _ in samples), default=0.0)
    window = max(last - first, 1e-9)
    return {
        "name": name,
        "requests": len(samples),
        "failures": failures,
        "error_pct": 100.0 * failures / len(samples) if samples else 0.0,
        "min_ms": times[0] if times else 0.0,
        "avg_ms": sum(times) / len(times) if times else 0.0,
        "p50_ms": percentile(times, 0.50),
        "p90_ms": percentile(times, 0.90),
        "p99_ms": percentile(times, 0.99),
        "max_ms": times[-1] if times else 0.0,
        "window_s": window if samples else 0.0,
        "rps": len(samples) / window if samples else 0.0,
    }


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _row(r: dict[str, Any], width: int) -> str:
    return (
        f"{r['name']:<{width}} {r['requests']:>8,} {r['failures']:>6,} {r['error_pct']:>6.2f}"
        f" {r['rps']:>8,.1f} {_ms(r['p50_ms']):>7} {_ms(r['p90_ms']):>7} {_ms(r['p99_ms']):>7}"
        f" {_ms(r['max_ms']):>7} {_ms(r['avg_ms']):>7}"
    )


def render(s: dict[str, Any]) -> str:
    lines = [
        f"scenario {s['scenario']} on {s['host']}, round {s['round'] or '-'}, "
        f"{s['users']} users (spawn {s['spawn_rate']}/s), run time {s['run_time']} s, "
        f"think time {s['think_time_s']} s, locust {s['locust']}, started {s['started_at']}",
    ]
    if s.get("setup_error"):
        lines.append(f"SETUP FAILED: {s['setup_error']}")
    rows = [*s["rows"], s["headline"], s["all"]]
    width = max(len(r["name"]) for r in rows)
    lines.append(
        f"{'':<{width}} {'requests':>8} {'fail':>6} {'err %':>6} {'req/s':>8} {'p50':>7}"
        f" {'p90':>7} {'p99':>7} {'max':>7} {'avg':>7}  (ms)"
    )
    lines += [_row(r, width) for r in s["rows"]]
    lines.append("-" * (width + 76))
    lines += [_row(s["headline"], width), _row(s["all"], width)]
    if s["errors"]:
        lines.append("failures:")
        lines += [
            f"  {e['occurrences']:>7,}  {e['method']} {e['name']}: {e['error']}"
            for e in s["errors"]
        ]
    else:
        lines.append("failures: none")
    barrier = s.get("barrier")
    if barrier:

        def sec(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f} s"

        lines.append(
            f"barrier: released ({barrier['released']}) with {barrier['ready_at_release']} users"
            f" ready ({barrier['signed_in']} signed in, {barrier['failed_to_sign_in']} failed);"
            f" {barrier['posts']} posts, median sent"
            f" {sec(barrier['median_post_sent_after_release_s'])}"
            f" and last sent {sec(barrier['last_post_sent_after_release_s'])} after the release,"
            f" last answered {sec(barrier['burst_duration_s'])} after it"
        )
        if barrier.get("posts_unanswered_at_end"):
            lines.append(
                f"WARNING: {barrier['posts_unanswered_at_end']} posts had no answer when the run"
                " ended: they are missing from the latencies above"
            )
    if s.get("load_generator_cpu_over_90pct"):
        lines.append(
            "WARNING: the load generator's CPU went over 90 %: latencies include its own lag"
        )
    h = s["headline"]
    lines.append(
        "table row: | "
        + " | ".join(
            [
                s["started_at"][:10],
                f"{s['users']:,}" if isinstance(s["users"], int) else str(s["users"]),
                f"{s['run_time']} s",
                f"{h['requests']:,}",
                f"{h['rps']:,.0f}",
                " / ".join(_ms(h[k]) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
                f"{h['error_pct']:.2f}",
            ]
        )
        + " |"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: summary.py SUMMARY.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        print(render(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
