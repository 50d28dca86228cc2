"""Which reader a set of files needs: ``fmt`` names and ``"auto"`` detection.

Only the canonical contract has a reader so far; the export formats of GA4,
PostHog and Criteo are recognised by their tell-tale columns so that ``auto``
can say what it saw instead of complaining about missing contract columns.
"""

from __future__ import annotations

from gaelp_bayes.errors import NotYetSupportedError
from gaelp_bayes.io.contract import TableSpec
from gaelp_bayes.io.sources import SourceFile

FORMATS: tuple[str, ...] = ("auto", "canonical", "ga4", "posthog", "criteo")
_EXPORTS: dict[str, tuple[str, frozenset[str]]] = {
    "ga4": (
        "GA4 (BigQuery export)",
        frozenset({"event_name", "event_timestamp", "user_pseudo_id"}),
    ),
    "posthog": ("PostHog", frozenset({"distinct_id", "event"})),
    "criteo": ("Criteo attribution", frozenset({"uid", "campaign", "conversion", "click"})),
}


_NOT_YET = (
    "GA4, PostHog and Criteo readers are not implemented yet. For now, convert the export "
    "to the canonical columns of docs/data-contract.md and use --format canonical."
)


def resolve_format(fmt: str, spec: TableSpec, files: list[SourceFile]) -> str:
    """The reader to use for ``files``: ``"canonical"`` (the only one so far).

    ``"auto"`` is canonical when every file has the contract's required
    columns, and also when no file looks like a known export (so that a file
    missing a column gets the contract's own message).

    Raises
    ------
    ValueError
        ``fmt`` is not one of :data:`FORMATS`.
    NotYetSupportedError
        ``fmt`` names an export format, or ``auto`` recognised one.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "canonical":
        return fmt
    if fmt != "auto":
        raise NotYetSupportedError(f"cannot read {_EXPORTS[fmt][0]} input: {_NOT_YET}")
    if all(set(spec.required) <= set(f.columns) for f in files):
        return "canonical"
    for f in files:
        for label, signature in _EXPORTS.values():
            if signature <= set(f.columns):
                raise NotYetSupportedError(
                    f"{f.display} looks like a {label} export "
                    f"(it has {', '.join(sorted(signature))}), not the canonical "
                    f"{spec.name} columns {', '.join(spec.required)}. {_NOT_YET}"
                )
    return "canonical"
