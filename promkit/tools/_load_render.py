"""``promkit load``'s output for people: the per-step table and breaking point for a
terminal (:func:`render_summary`) and an SVG chart of the steps (:func:`render_chart`)."""

from __future__ import annotations

from promkit.tools._load_results import LoadResult
from promkit.tools._load_server import ServerView


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f}"


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_summary(result: LoadResult) -> str:
    """The per-step table and the breaking point, for a terminal."""
    server = any(s.server is not None for s in result.steps)
    headers = ["users", "seconds", "requests", "rps", "p50 ms", "p95 ms", "p99 ms", "errors",
               "error %", "flow p95 ms", "client cpu %"]
    if server:
        headers += ["srv rps", "srv p95 ms", "srv err %", "queue", "oldest s"]
    headers.append("")
    rows = []
    for s in result.steps:
        q = s.quantiles()
        notes = []
        if s.client_bound:
            notes.append("CLIENT-BOUND (client figures measure the load generator)")
        if s.breached:
            notes.append(("client breaks: " if s.client_bound else "BREAKS: ")
                         + "; ".join(s.breached))
        if s.server_breached:
            notes.append("SERVER BREAKS: " + "; ".join(s.server_breached))
        if s.server is not None and s.server.error:
            notes.append(f"(server view: {s.server.error})")
        if not s.complete:
            notes.append("(cut short)")
        row = [str(s.users), f"{s.seconds:.1f}", str(s.requests), f"{s.rps:.1f}",
               _ms(q["p50"]), _ms(q["p95"]), _ms(q["p99"]), str(s.errors),
               f"{s.error_ratio * 100:.1f}", _ms(s.flow_quantiles()["p95"]),
               f"{s.client_cpu_ratio * 100:.0f}"]
        if server:
            v = s.server or ServerView(0)
            row += [_num(v.rps, 1), _ms(v.p95),
                    _num(None if v.error_ratio is None else v.error_ratio * 100, 1),
                    _num(v.queue_depth, 0), _num(v.oldest_age, 1)]
        rows.append([*row, " ".join(notes)])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.rjust(w) if i < len(headers) - 1 else c
                        for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    c = result.config
    bp = result.breaking_point
    bound = next((s for s in result.steps if s.client_bound), None)
    if bp is not None:
        lines.append(f"breaking point: {bp.users} concurrent users ({'; '.join(bp.reasons())})")
    elif bound is not None:
        lines.append(f"breaking point: not reached (the client saturated at {bound.users} "
                     f"users: {bound.client_cpu_ratio:.0%} of a core per client process > "
                     f"--client-cpu-max {c.client_cpu_max:.0%}; from there on the figures "
                     "are the client's, not the service's)")
    else:
        why = {"users_max": f"all steps up to {c.users_max} users stayed within limits",
               "max_seconds": f"stopped at --max-seconds {c.max_seconds:g}",
               "max_requests": f"stopped at --max-requests {c.max_requests}",
               }.get(result.stop_reason, f"stopped ({result.stop_reason})")
        lines.append(f"breaking point: not reached ({why})")
    lines.append(f"{result.total_requests} requests in {result.elapsed:.1f} s; limits: p95 <= "
                 f"{c.p95_max_ms:g} ms, errors <= {c.error_ratio_max:.1%}")
    return "\n".join(lines) + "\n"


def render_chart(result: LoadResult) -> str:
    """An SVG chart of the steps: throughput (req/s) and p95 against users, the breaking
    point and client-bound steps marked; with a server view its p95 is drawn too."""
    from xml.sax.saxutils import escape

    steps = result.steps
    width, height, left, right, top, bottom = 720, 360, 70, 70, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(steps) - 1)

    def x(i: int) -> float:
        return left + (plot_w * i / n if len(steps) > 1 else plot_w / 2)

    rps = [s.rps for s in steps]
    p95 = [(s.quantiles()["p95"] or 0.0) * 1000 for s in steps]
    srv = [(s.server.p95 * 1000 if s.server is not None and s.server.p95 is not None
            else None) for s in steps]
    rps_max = max(rps, default=0.0) * 1.1 or 1.0
    ms_max = max([*p95, *(v for v in srv if v is not None),
                  result.config.p95_max_ms], default=0.0) * 1.1 or 1.0

    def y(value: float, top_value: float) -> float:
        return top + plot_h - plot_h * value / top_value

    def line(values: list[float | None], top_value: float, colour: str, dash: str = "") -> str:
        points = " ".join(f"{x(i):.1f},{y(v, top_value):.1f}"
                          for i, v in enumerate(values) if v is not None)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        return (f'<polyline fill="none" stroke="{colour}" stroke-width="2"{extra} '
                f'points="{points}"/>')

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<title>promkit load: {escape(result.config.url)}</title>',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
           'stroke="#444"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>',
           f'<line x1="{left + plot_w}" y1="{top}" x2="{left + plot_w}" y2="{top + plot_h}" '
           'stroke="#444"/>']
    limit_y = y(result.config.p95_max_ms, ms_max)
    out.append(f'<line x1="{left}" y1="{limit_y:.1f}" x2="{left + plot_w}" y2="{limit_y:.1f}" '
               'stroke="#d62728" stroke-dasharray="2 4"/>')
    for i, s in enumerate(steps):
        out.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
                   f'{s.users}</text>')
        if s.client_bound:
            out.append(f'<rect x="{x(i) - 6:.1f}" y="{top}" width="12" height="{plot_h}" '
                       'fill="#999" opacity="0.25"><title>client-bound</title></rect>')
        if s is result.breaking_point:
            out.append(f'<line x1="{x(i):.1f}" y1="{top}" x2="{x(i):.1f}" '
                       f'y2="{top + plot_h}" stroke="#d62728"/>')
            out.append(f'<text x="{x(i) - 4:.1f}" y="{top - 6}" text-anchor="end" '
                       f'fill="#d62728">breaking point: {s.users} users</text>')
    for frac in (0.0, 0.5, 1.0):
        ty = top + plot_h - plot_h * frac
        out.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="#1f77b4">'
                   f'{rps_max * frac:.0f}</text>')
        out.append(f'<text x="{left + plot_w + 6}" y="{ty + 4:.1f}" fill="#ff7f0e">'
                   f'{ms_max * frac:.0f}</text>')
    out += [line(list(rps), rps_max, "#1f77b4"), line(list(p95), ms_max, "#ff7f0e")]
    if any(v is not None for v in srv):
        out.append(line(srv, ms_max, "#2ca02c", "6 3"))
    out += [f'<text x="{left + plot_w / 2}" y="{height - 12}" text-anchor="middle">'
            'concurrent users</text>',
            f'<text x="{left}" y="{top - 22}" fill="#1f77b4">req/s</text>',
            f'<text x="{left + plot_w}" y="{top - 22}" text-anchor="end" fill="#ff7f0e">'
            'p95 ms (client)' + (' / server (dashed)' if any(v is not None for v in srv)
                                 else '') + f'; limit {result.config.p95_max_ms:g} ms</text>',
            "</svg>"]
    return "\n".join(out) + "\n"
