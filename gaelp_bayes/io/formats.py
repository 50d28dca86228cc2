"""Which reader a set of files needs: ``fmt`` names and ``"auto"`` detection.

The canonical contract (CSV/Parquet with the columns of ``docs/data-contract.md``)
has the shared reader; the export formats of GA4 (BigQuery export), PostHog
and Criteo (attribution dataset) have readers in :mod:`gaelp_bayes.io.exports`
that map them to the contract. ``"auto"`` recognises an export by its
tell-tale columns (see :data:`EXPORT_SIGNATURES`).
"""

from __future__ import annotations

from gaelp_bayes.errors import DataError, InputNotFoundError
from gaelp_bayes.io.contract import TableSpec
from gaelp_bayes.io.sources import SourceFile

FORMATS: tuple[str, ...] = ("auto", "canonical", "ga4", "posthog", "criteo")

#: format -> (label, columns whose presence identifies it)
EXPORT_SIGNATURES: dict[str, tuple[str, frozenset[str]]] = {
    "ga4": ("GA4 (BigQuery export)", frozenset({"event_name", "event_timestamp"})),
    "posthog": ("PostHog", frozenset({"distinct_id", "event"})),
    "criteo": ("Criteo attribution", frozenset({"uid", "campaign", "conversion", "click"})),
}


def detect_export(f: SourceFile) -> str | None:
    """The export format whose signature columns ``f`` has, or None."""
    for name, (_, signature) in EXPORT_SIGNATURES.items():
        if signature <= set(f.columns):
            return name
    return None


def resolve_format(fmt: str, spec: TableSpec, files: list[SourceFile]) -> str:
    """The reader to use for ``files``: ``"canonical"``, ``"ga4"``, ``"posthog"`` or ``"criteo"``.

    ``"auto"`` is canonical when every file has the contract's required
    columns, and also when no file looks like a known export (so that a file
    missing a column gets the contract's own message). Exports only carry
    ``events``; an ``auctions`` table is always read as canonical.

    Raises
    ------
    ValueError
        ``fmt`` is not one of :data:`FORMATS`.
    DataError
        The files mix formats, or canonical input is not CSV/Parquet.
    InputNotFoundError
        A JSON-lines or TSV file's format cannot be told from its columns.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if spec.name != "events":
        fmt = "canonical"
    if fmt == "auto":
        fmt = _detect(spec, files)
    if fmt == "canonical" and not canonical_files(files):
        f = files[0]
        kind = "JSON lines" if f.format == "json" else "tab-separated"
        raise DataError(
            f"{f.display} is {kind}, but canonical {spec.name} input must be CSV or "
            "Parquet; convert it, or read an export with --format ga4, posthog or "
            "criteo (see docs/exports.md)."
        )
    return fmt


def canonical_files(files: list[SourceFile]) -> list[SourceFile]:
    """The files a canonical read uses: CSV and Parquet (other files in a folder,
    such as a JSON sidecar, are not part of a canonical table)."""
    return [f for f in files if f.format in ("csv", "parquet")]


def _detect(spec: TableSpec, files: list[SourceFile]) -> str:
    tables = canonical_files(files)
    if tables and all(set(spec.required) <= set(f.columns) for f in tables):
        if not any(detect_export(f) for f in files if f not in tables):
            return "canonical"
    found = {f.display: detect_export(f) for f in files}
    kinds = {k for k in found.values() if k is not None}
    if len(kinds) > 1:
        listing = "; ".join(f"{d}: {k or 'unknown'}" for d, k in found.items())
        raise DataError(
            f"the input files are of different formats ({listing}); read each export on its "
            "own, or pass --format."
        )
    if not kinds:
        unknown = [f for f in files if f.format not in ("csv", "parquet")]
        if unknown:
            f = unknown[0]
            cols = ", ".join(f.columns[:15]) or "none readable"
            raise InputNotFoundError(
                f"{f.display} is not a .csv, .csv.gz or .parquet file, and its columns "
                f"({cols}) are not those of a known export: GA4 (event_name, event_timestamp), "
                "PostHog (distinct_id, event) or Criteo (uid, campaign, conversion, click). "
                "Pass --format ga4, posthog or criteo, or convert it to the canonical columns."
            )
        return "canonical"
    (kind,) = kinds
    return kind
