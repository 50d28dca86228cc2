"""Blocking: candidate device pairs from a union of SQL rules (DuckDB).

Comparing every pair of devices is quadratic; blocking keeps the pairs that
share something cheap to join on. The rules (each can be switched off in
:class:`BlockingConfig`):

``prefix_day``
    the two devices used the same ``ip_prefix`` on the same UTC day, on a
    prefix-day seen with at most ``max_devices_per_prefix_day`` devices (a
    carrier NAT or big public network is shared by very many devices and says
    nothing; those prefix-days are skipped, not sampled).
``rare_prefix``
    the two devices used the same ``ip_prefix`` (any days) and that prefix was
    seen with at most ``max_devices_per_rare_prefix`` devices in all (a home
    network seen on different days by the two devices).
``user_id``
    the two devices carry the same non-null ``user_id`` (known links).
``geo_time``
    the two devices were active in the same ``geo`` within the same
    ``geo_time_minutes`` window, in windows with at most
    ``max_devices_per_geo_window`` devices.

Everything runs as SQL on one DuckDB connection (:func:`run_sql` is the only
place that touches the engine), so the same statements can later move onto the
engine interface of :mod:`gaelp_bayes.io.engines`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["BlockingConfig", "BlockingResult", "block", "device_table", "run_sql"]


@dataclass(frozen=True)
class BlockingConfig:
    """Which blocking rules run, and the caps on over-shared keys."""

    rules: tuple[str, ...] = ("prefix_day", "rare_prefix", "user_id")  # geo_time: opt-in
    max_devices_per_prefix_day: int = 20
    max_devices_per_rare_prefix: int = 12
    geo_time_minutes: int = 2
    max_devices_per_geo_window: int = 6

    def validate(self) -> list[str]:
        problems = []
        unknown = set(self.rules) - set(RULES)
        if unknown:
            problems.append(f"blocking rules {sorted(unknown)} unknown (known: {', '.join(RULES)})")
        for name in (
            "max_devices_per_prefix_day",
            "max_devices_per_rare_prefix",
            "geo_time_minutes",
            "max_devices_per_geo_window",
        ):
            if getattr(self, name) < 2 and name != "geo_time_minutes":
                problems.append(f"{name} must be >= 2, got {getattr(self, name)}")
        if self.geo_time_minutes < 1:
            problems.append(f"geo_time_minutes must be >= 1, got {self.geo_time_minutes}")
        return problems


RULES = ("prefix_day", "rare_prefix", "user_id", "geo_time")


@dataclass
class BlockingResult:
    """Candidate pairs (``a < b`` device indices), which rules found them, and recall."""

    devices: pd.DataFrame  # one row per device, index = device index (0..n-1)
    pairs: pd.DataFrame  # a, b (int), rules (bit mask), plus comparison inputs
    rule_counts: dict[str, int] = field(default_factory=dict)
    known_links: int = 0  # device pairs sharing a non-null user_id
    known_links_found: int = 0  # of those, found by the rules other than user_id

    @property
    def recall_on_known_links(self) -> float:
        """Share of known links (same ``user_id``) that the non-``user_id`` rules find.

        An estimate of blocking recall on the links nobody logged in to reveal:
        a link that blocking misses can never be predicted.
        """
        return self.known_links_found / self.known_links if self.known_links else float("nan")

    def report(self) -> dict:
        return {
            "devices": len(self.devices),
            "candidate_pairs": len(self.pairs),
            "pairs_per_rule": dict(self.rule_counts),
            "known_links": self.known_links,
            "known_links_found_without_user_id": self.known_links_found,
            "recall_on_known_links": self.recall_on_known_links,
        }


def run_sql(con, sql: str) -> pd.DataFrame:
    """The engine boundary: run one statement and return a pandas frame."""
    return con.execute(sql).fetch_df()


def _connect(threads: int | None = None):
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    return con


def _has(events: pd.DataFrame, col: str) -> bool:
    return col in events.columns and events[col].notna().any()


def device_table(con, events: pd.DataFrame) -> pd.DataFrame:
    """Register ``events`` and build per-device attributes (modal values, activity span).

    Creates the tables ``ev`` (with ``dev`` = dense device index, ``day``) and
    ``dev`` on ``con``, and returns ``dev`` as pandas.
    """
    cols = ["device_id", "timestamp"] + [
        c
        for c in ("user_id", "ip_prefix", "geo", "user_agent", "device_type", "segment")
        if c in events.columns
    ]
    src = events[cols]
    con.register("events_src", src)
    opt = {
        c: (c if c in events.columns else f"NULL::VARCHAR AS {c}")
        for c in ("user_id", "ip_prefix", "geo", "user_agent", "device_type", "segment")
    }
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE dev_ids AS
        SELECT device_id, (row_number() OVER (ORDER BY device_id) - 1)::INTEGER AS dev
        FROM (SELECT DISTINCT CAST(device_id AS VARCHAR) AS device_id FROM events_src)
        """
    )
    sel = ", ".join(f"CAST({opt[c]} AS VARCHAR) AS {c}" if opt[c] == c else opt[c] for c in opt)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE ev AS
        SELECT i.dev, e.timestamp AS ts,
               CAST(date_trunc('day', e.timestamp AT TIME ZONE 'UTC') AS DATE) AS day,
               e.* EXCLUDE (device_id, timestamp)
        FROM (SELECT CAST(device_id AS VARCHAR) AS device_id, timestamp, {sel}
              FROM events_src) e
        JOIN dev_ids i USING (device_id)
        """
    )
    con.unregister("events_src")

    # the most frequent non-null value per device, ties to the smallest value: SQL's
    # mode() breaks ties by arrival order, which varies between runs with threads
    modal_cols = ("user_id", "geo", "user_agent", "device_type", "segment")
    ctes = ",\n".join(
        f"""m_{col} AS (
            SELECT dev, first(v ORDER BY n DESC, v) AS {col}
            FROM (SELECT dev, {col} AS v, count(*) AS n FROM ev
                  WHERE {col} IS NOT NULL GROUP BY dev, {col})
            GROUP BY dev)"""
        for col in modal_cols
    )
    joins = "\n".join(f"LEFT JOIN m_{col} USING (dev)" for col in modal_cols)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE dev AS
        WITH {ctes}
        SELECT i.dev, i.device_id, a.* EXCLUDE (dev), {", ".join(modal_cols)}
        FROM dev_ids i JOIN (
            SELECT dev,
                   count(*) AS n_events,
                   epoch(min(ts)) / 86400.0 AS first_day,
                   epoch(max(ts)) / 86400.0 AS last_day,
                   count(DISTINCT day) AS n_days,
                   count(DISTINCT user_id) AS n_user_ids
            FROM ev GROUP BY dev
        ) a USING (dev)
        {joins}
        ORDER BY i.dev
        """
    )
    return run_sql(con, "SELECT * FROM dev ORDER BY dev")


def _rule_sql(rule: str, cfg: BlockingConfig) -> str:
    if rule == "prefix_day":
        return f"""
            SELECT x.dev AS a, y.dev AS b FROM pd x JOIN pd y
              ON x.ip_prefix = y.ip_prefix AND x.day = y.day AND x.dev < y.dev
            WHERE x.n_pd <= {cfg.max_devices_per_prefix_day}"""
    if rule == "rare_prefix":
        return f"""
            SELECT x.dev AS a, y.dev AS b FROM dp x JOIN dp y
              ON x.ip_prefix = y.ip_prefix AND x.dev < y.dev
            WHERE x.n_p <= {cfg.max_devices_per_rare_prefix}"""
    if rule == "user_id":
        return """
            SELECT x.dev AS a, y.dev AS b FROM du x JOIN du y
              ON x.user_id = y.user_id AND x.dev < y.dev"""
    if rule == "geo_time":
        return f"""
            SELECT x.dev AS a, y.dev AS b FROM gw x JOIN gw y
              ON x.geo = y.geo AND x.w = y.w AND x.dev < y.dev
            WHERE x.n_w <= {cfg.max_devices_per_geo_window}"""
    raise ValueError(rule)


def block(
    events: pd.DataFrame, cfg: BlockingConfig | None = None, *, threads: int | None = None
) -> BlockingResult:
    """Candidate pairs of devices and the comparison inputs of each pair.

    Returns pairs with, per pair: the rules that found it (bit mask in
    :data:`RULES` order), the number of days on which the two devices shared a
    prefix (``shared_days``), the device count of the rarest prefix they share
    (``min_prefix_devices``, null when none), and their activity-span overlap
    (``span_overlap`` in [0, 1], intersection over union of [first, last]).
    """
    cfg = cfg or BlockingConfig()
    con = _connect(threads)
    try:
        devices = device_table(con, events)
        rules = [r for r in cfg.rules if r in RULES]
        has_ip = _has(events, "ip_prefix")
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE pd AS
            SELECT dev, ip_prefix, day, count(*) OVER (PARTITION BY ip_prefix, day) AS n_pd
            FROM (SELECT DISTINCT dev, ip_prefix, day FROM ev WHERE ip_prefix IS NOT NULL)
            """
        )
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE dp AS
            SELECT dev, ip_prefix, count(*) OVER (PARTITION BY ip_prefix) AS n_p
            FROM (SELECT DISTINCT dev, ip_prefix FROM ev WHERE ip_prefix IS NOT NULL)
            """
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE du AS "
            "SELECT DISTINCT dev, user_id FROM ev WHERE user_id IS NOT NULL"
        )
        minutes = int(cfg.geo_time_minutes)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE gw AS
            SELECT dev, geo, w, count(*) OVER (PARTITION BY geo, w) AS n_w
            FROM (SELECT DISTINCT dev, geo, floor(epoch(ts) / {60 * minutes})::BIGINT AS w
                  FROM ev WHERE geo IS NOT NULL)
            """
        )
        if not has_ip:
            rules = [r for r in rules if r not in ("prefix_day", "rare_prefix")]
        parts = [
            f"SELECT DISTINCT a, b, {1 << RULES.index(r)} AS bit FROM ({_rule_sql(r, cfg)})"
            for r in rules
        ]
        if not parts:
            parts = ["SELECT NULL::INTEGER AS a, NULL::INTEGER AS b, 0 AS bit WHERE false"]
        con.execute(
            "CREATE OR REPLACE TEMP TABLE cand AS SELECT a, b, bit_or(bit) AS rules FROM ("
            + " UNION ALL ".join(parts)
            + ") GROUP BY a, b"
        )
        # comparison inputs: shared prefix-days and rarity of the rarest shared prefix
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE shared AS
            WITH cp AS (
                SELECT c.a, c.b, x.ip_prefix, x.n_p FROM cand c
                JOIN dp x ON x.dev = c.a JOIN dp y ON y.dev = c.b AND y.ip_prefix = x.ip_prefix
            ),
            cd AS (
                SELECT c.a, c.b, count(*) AS shared_days,
                       min(x.n_pd) AS min_prefix_day_devices FROM cand c
                JOIN pd x ON x.dev = c.a
                JOIN pd y ON y.dev = c.b AND y.ip_prefix = x.ip_prefix AND y.day = x.day
                GROUP BY c.a, c.b
            )
            SELECT cp.a, cp.b, min(cp.n_p) AS min_prefix_devices,
                   count(*) AS shared_prefixes
            FROM cp GROUP BY cp.a, cp.b
            """
        )
        pairs = run_sql(
            con,
            """
            WITH cd AS (
                SELECT c.a, c.b, count(*) AS shared_days,
                       min(x.n_pd) AS min_prefix_day_devices FROM cand c
                JOIN pd x ON x.dev = c.a
                JOIN pd y ON y.dev = c.b AND y.ip_prefix = x.ip_prefix AND y.day = x.day
                GROUP BY c.a, c.b
            )
            SELECT c.a, c.b, c.rules,
                   coalesce(cd.shared_days, 0) AS shared_days,
                   cd.min_prefix_day_devices,
                   s.min_prefix_devices,
                   coalesce(s.shared_prefixes, 0) AS shared_prefixes
            FROM cand c
            LEFT JOIN cd USING (a, b)
            LEFT JOIN shared s USING (a, b)
            ORDER BY c.a, c.b
            """,
        )
        known = run_sql(
            con,
            """
            SELECT count(*) AS n,
                   count(*) FILTER (WHERE c.rules & {mask} <> 0) AS found
            FROM (SELECT DISTINCT x.dev AS a, y.dev AS b FROM du x JOIN du y
                  ON x.user_id = y.user_id AND x.dev < y.dev) k
            LEFT JOIN cand c USING (a, b)
            """.format(mask=sum(1 << RULES.index(r) for r in rules if r != "user_id") or 0),
        )
        counts = {
            r: int((pairs["rules"].to_numpy() & (1 << RULES.index(r)) != 0).sum()) for r in rules
        }
    finally:
        con.close()
    return BlockingResult(
        devices=devices,
        pairs=pairs,
        rule_counts=counts,
        known_links=int(known["n"].iloc[0]),
        known_links_found=int(known["found"].iloc[0] or 0),
    )
