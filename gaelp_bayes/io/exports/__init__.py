"""Readers and writers of real export formats: GA4 BigQuery, PostHog, Criteo (issue 3).

Readers map an export to the contract's ``events`` table (docs/exports.md has
the field mapping of each format) and run the shared validation pipeline, so
strict/lenient modes, the rejects file and the report work as for canonical
input. Writers turn contract events (e.g. the synthetic example world) into
what each tool would export.

Example
-------
>>> from gaelp_bayes.io import read_events
>>> res = read_events("ga4_export/", fmt="ga4")          # doctest: +SKIP
>>> res = read_events("posthog.csv", fmt="auto")         # doctest: +SKIP
>>> from gaelp_bayes.io.exports import write_export
>>> write_export(events_df, "out/", "posthog")           # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from gaelp_bayes.io.contract import TableSpec
from gaelp_bayes.io.engines.base import Engine
from gaelp_bayes.io.exports.mapping import (
    DEFAULT_MAPPING,
    MAPPING_FILE,
    ChannelRule,
    Mapping,
    load_mapping,
    resolve_mapping,
    use_mapping,
)
from gaelp_bayes.io.report import ValidationReport
from gaelp_bayes.io.sources import SourceFile

EXPORT_FORMATS: tuple[str, ...] = ("ga4", "posthog", "criteo")


def read_export(
    spec: TableSpec,
    fmt: str,
    files: list[SourceFile],
    engine: Engine,
    *,
    mode: str,
    rejects_path: Path | None,
    source: str,
    mapping: Mapping,
) -> tuple[pa.Table, ValidationReport]:
    """Read export ``files`` of format ``fmt`` as the contract table ``spec`` (events)."""
    from gaelp_bayes.io.exports import criteo, ga4, posthog
    from gaelp_bayes.io.exports.common import read_mapped

    if fmt == "criteo":
        return criteo.read(
            spec, files, engine, mode=mode, rejects_path=rejects_path, source=source,
            mapping=mapping,
        )  # fmt: skip
    module = {"ga4": ga4, "posthog": posthog}[fmt]
    json_input = any(f.format == "json" for f in files)
    row_words = (
        "Row numbers are line numbers of the JSON-lines file."
        if json_input
        else "Row numbers count data rows from 1 (row r is line r+1 of a CSV file; row r of "
        "a Parquet file)."
    )
    return read_mapped(
        spec,
        files,
        engine,
        label=module.LABEL,
        columns=module.COLUMNS,
        fields=module.FIELDS,
        used=module.USED,
        load=lambda eng, rel, f: module.load(eng, rel, f, mapping),
        mode=mode,
        rejects_path=rejects_path,
        source=source,
        fmt=fmt,
        row_words=row_words,
    )


def write_export(
    events: pd.DataFrame | pa.Table,
    out_dir: str | Path,
    fmt: str,
    *,
    file_format: str | None = None,
    provenance: str = "",
    criteo_start: str | None = None,
) -> list[Path]:
    """Write contract ``events`` as ``fmt`` would export them, plus a
    ``gaelp-mapping.toml`` that maps the export back exactly. Returns the data
    files written (in ``out_dir``)."""
    from gaelp_bayes.io.contract import EVENTS
    from gaelp_bayes.io.exports import criteo, ga4, posthog

    if isinstance(events, pa.Table):
        events = events.to_pandas()
    missing = [c for c in EVENTS.required if c not in events]
    if missing:
        raise ValueError(f"events lack the required column(s) {', '.join(missing)}")
    events = events.assign(**{c: None for c in EVENTS.names if c not in events})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    channels = sorted(c for c in events["channel"].dropna().unique() if c != "direct")
    if fmt == "ga4":
        paths = ga4.write(events, out_dir, file_format or "parquet", provenance)
        extra = ""
    elif fmt == "posthog":
        paths = posthog.write(events, out_dir, file_format or "csv", provenance)
        extra = ""
    elif fmt == "criteo":
        paths, start = criteo.write(events, out_dir, provenance, start=criteo_start)
        extra = f'[criteo]\nstart = "{start}"\n'
    else:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {EXPORT_FORMATS}")
    (out_dir / MAPPING_FILE).write_text(ga4.mapping_toml(channels, extra), encoding="utf-8")
    if provenance:
        (out_dir / "README.txt").write_text(provenance + "\n", encoding="utf-8")
    return paths


__all__ = [
    "DEFAULT_MAPPING",
    "EXPORT_FORMATS",
    "MAPPING_FILE",
    "ChannelRule",
    "Mapping",
    "load_mapping",
    "read_export",
    "resolve_mapping",
    "use_mapping",
    "write_export",
]
