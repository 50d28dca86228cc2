"""The header: what this bundle is (as_of, versions, input fingerprint, configuration)."""

from __future__ import annotations

from gaelp_bayes import __version__
from gaelp_bayes.report.context import ReportContext
from gaelp_bayes.report.html import details, esc, pre_json, section, table

__all__ = ["header_section"]


def header_section(ctx: ReportContext) -> str:
    m = ctx.bundle.manifest
    inp = m.get("input") or {}
    paths = inp.get("paths") or []
    fp = inp.get("fingerprint")
    rows = [
        ("bundle", f"<code>{esc(ctx.bundle.path.resolve())}</code>"),
        ("as_of", esc(m.get("as_of", ctx.bundle.summary.get("as_of", "n/a")))),
        ("created", esc(m.get("created", "n/a"))),
        (
            "package version",
            f"bundle written by gaelp-bayes {esc(m.get('package_version', 'unknown'))} "
            f"(bundle format {esc(m.get('bundle_version', '?'))}); "
            f"report by gaelp-bayes {esc(__version__)}",
        ),
        ("models", esc(", ".join(ctx.bundle.models) or "none")),
        ("input files", "<br>".join(f"<code>{esc(p)}</code>" for p in paths) or "n/a"),
        (
            "input fingerprint",
            f"<code>{esc(fp)}</code> <span class='ci'>(SHA-256 of the input bytes)</span>"
            if fp
            else "n/a",
        ),
        ("tables", esc(", ".join(m.get("tables") or []) or "none")),
    ]
    if ctx.truth is not None:
        rows.append(("ground truth", f"<code>{esc(ctx.truth)}</code>"))
    cfg = m.get("config") or {}
    sampler = cfg.get("sampler") or {}
    if sampler:
        rows.append(("sampler", esc(", ".join(f"{k}={v}" for k, v in sampler.items()))))
    body = table(["", ""], rows, cls="meta", raw=True)
    body += details("full configuration", pre_json(cfg))
    return section("overview", "Overview", body)
