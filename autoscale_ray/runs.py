"""The runs table: one row per evaluation (a run at one checkpoint), read, validated and written.

Columns (docs/architecture.md, "The runs table"): `run_id` and `tokens` required; `budget` (default: the run's
largest `tokens`), `params`, `lr`, `w.<domain>` (normalised to sum 1 on read), `loss.<domain>`,
`loss` (default: mean of the `loss.<domain>` columns, or weighted by an eval mixture), and the
optional `seed`, `stage`, `status`. Rows whose `status` is `failed` or `diverged` are dropped with
a warning that names them, so a diverged run never enters a fit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from autoscale_ray.atomic import atomic_path
from autoscale_ray.checks import (as_text, check_known, did_you_mean, weight_column_lookalikes,
                                  weight_vector)
from autoscale_ray.errors import BadInput
from autoscale_ray.laws.checks import first_index, missing, negative, on_simplex, simplex_rows

log = logging.getLogger("autoscale_ray")

WEIGHT_PREFIX = "w."
LOSS_PREFIX = "loss."
REQUIRED = ("run_id", "tokens")
FAILED_STATUSES = frozenset({"failed", "diverged", "error"})
FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}
DELIMITERS = (",", ";", "\t")
_DECIMAL_COMMA = re.compile(r"(^|[;\t])\s*-?\d+,\d+\s*($|[;\t])")


@dataclass(frozen=True)
class RunsTable:
    """A validated runs table. `frame` keeps the file's row order; weights sum to 1 per row."""

    frame: pd.DataFrame
    source: str
    domains: tuple[str, ...]
    loss_domains: tuple[str, ...]
    # each run's weights as written, summed (before normalising): percent and unit slips show here
    weight_sums: Mapping[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def run_ids(self) -> list[str]:
        return list(dict.fromkeys(self.frame["run_id"]))

    def weights(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """Mixture weights, rows x domains (each row sums to 1)."""
        f = self.frame if frame is None else frame
        return f[[WEIGHT_PREFIX + d for d in self.domains]].to_numpy(dtype=float)

    def quantities(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """Per-domain token quantities N_i = w_i x budget, rows x domains."""
        f = self.frame if frame is None else frame
        return self.weights(f) * f["budget"].to_numpy(dtype=float)[:, None]

    def final(self) -> pd.DataFrame:
        """Each run's last evaluation (its largest `tokens`), in order of first appearance."""
        idx = self.frame.groupby("run_id", sort=False)["tokens"].idxmax()
        return self.frame.loc[idx.to_numpy()].reset_index(drop=True)

    def objective(self, metric: str = "mean-loss", frame: pd.DataFrame | None = None) -> np.ndarray:
        """The value to minimise: `mean-loss` (the `loss` column), `mean-ppl` (mean of per-domain
        perplexities exp(loss.<d>), AutoScale's objective), or the name of any numeric column."""
        f = self.frame if frame is None else frame
        if metric == "mean-loss":
            col = "loss"
            if col not in f.columns:
                raise BadInput("no `loss` or `loss.<domain>` columns", self.source,
                               "add per-domain validation losses or a `loss` column")
            return f[col].to_numpy(dtype=float)
        if metric == "mean-ppl":
            if not self.loss_domains:
                raise BadInput("metric mean-ppl needs `loss.<domain>` columns", self.source,
                               "add per-domain validation losses or choose --metric mean-loss")
            cols = [LOSS_PREFIX + d for d in self.loss_domains]
            return np.exp(f[cols].to_numpy(dtype=float)).mean(axis=1)
        if metric not in f.columns:
            raise BadInput(f"metric column `{metric}` not found", self.source,
                           f"use mean-loss, mean-ppl or one of: {', '.join(map(str, f.columns))}")
        values = pd.to_numeric(f[metric], errors="coerce").to_numpy(dtype=float)
        _check_finite(values, metric, self.source, f.index)
        return values


def require_weight_columns(domains: Sequence[str], source: str,
                           fix: str = "add one `w.<domain>` column per training domain",
                           columns: Iterable[str] = ()) -> None:
    """A table that a mixture fit reads has `w.<domain>` columns; the error names the columns
    that look like weights written another way (`w_cc`: did you mean `w.cc`?)."""
    if not domains:
        alike = weight_column_lookalikes(columns)
        if alike:
            fix = ("rename " + ", ".join(f"`{k}` to `{v}`" for k, v in list(alike.items())[:4])
                   + " (weights are `w.<domain>`, with a dot)")
        raise BadInput("no mixture-weight columns `w.<domain>`", source, fix)


def _where(source: str, row: int, column: str) -> str:
    return f"{source}, row {row + 1}, column `{column}`"


def _check_finite(values: np.ndarray, column: str, source: str, index: Iterable[int]) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.asarray(list(index))[np.argmax(bad)])
        raise BadInput(f"value is {values[np.argmax(bad)]} (NaN, inf or not a number)",
                       _where(source, row, column), "give a finite number or remove the row")


def _read_any(path: Path) -> pd.DataFrame:
    return read_table(path, "runs-table", "use a .csv, .tsv or .parquet file",
                      {"run_id": pa.string(), "status": pa.string(), "stage": pa.string()})


def read_table(path: str | Path, noun: str = "table", fix: str = "use .csv, .tsv or .parquet",
               column_types: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A CSV (its delimiter sniffed: `,`, `;` or tab; `.tsv` is tab) or Parquet file as a frame;
    BadInput for a missing file, an unknown suffix, decimal commas, or what pyarrow cannot parse."""
    path = Path(path)
    if not path.exists():
        raise BadInput("file not found", str(path), "check the path")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BadInput(f"unknown {noun} format `{path.suffix}`", str(path), fix)
    try:
        if fmt == "csv":
            delimiter = _sniff_delimiter(path)
            table = pacsv.read_csv(
                path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(column_types=dict(column_types or {})))
        else:
            table = pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"cannot parse {fmt}: {first}", str(path),
                       f"write a valid {fmt} {noun.replace('-', ' ')}") from None
    return table.to_pandas()


def _sniff_delimiter(path: Path) -> str:
    """`,` unless the header holds more `;` or tabs (`.tsv`: tab); a `;`/tab file whose numbers
    use decimal commas (3,14) is refused with the fix, as pyarrow would read them as text."""
    with open(path, encoding="utf-8", errors="replace") as f:
        head = [f.readline() for _ in range(6)]
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        delimiter = max(DELIMITERS, key=lambda d: (head[0].count(d), d == ","))
    if delimiter != "," and any(_DECIMAL_COMMA.search(line.rstrip("\n")) for line in head[1:]):
        raise BadInput("numbers are written with decimal commas (e.g. 3,14)", str(path),
                       "write decimal points (3.14): export with a point as the decimal separator")
    return delimiter


def _check_columns(frame: pd.DataFrame, source: str) -> None:
    """Column names and types a table could be silently misread by: a repeated column, `w.` (a
    domain named ""), `w.web ` (a second domain `web `), booleans read as 1.0, timestamps as
    nanoseconds."""
    names = [str(c) for c in frame.columns]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BadInput(f"column `{name}` appears twice", source, "keep one column of each name")
        seen.add(name)
    for name in names:
        for prefix in (WEIGHT_PREFIX, LOSS_PREFIX):
            if name.startswith(prefix):
                domain = name[len(prefix):]
                if not domain:
                    raise BadInput(f"column `{name}` names no domain", source,
                                   f"name it `{prefix}<domain>` or remove it")
                if domain != domain.strip():
                    raise BadInput(f"column `{name}`: the domain name has leading or trailing spaces",
                                   source, f"rename it `{prefix}{domain.strip()}`")
        if name != name.strip() and name.strip() in (*REQUIRED, "budget", "params", "lr", "loss", "seed",
                                                     "stage", "status"):
            raise BadInput(f"column `{name}` has leading or trailing spaces", source,
                           f"rename it `{name.strip()}`")
    for name in names:
        if name in ("run_id", "stage", "status"):
            continue
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype):
            raise BadInput(f"column `{name}` holds booleans, not numbers", source,
                           "give numbers (a loss, a weight, a token count)")
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            raise BadInput(f"column `{name}` holds dates or times, not numbers", source,
                           "give token counts and losses as plain numbers")


def _warn_constant_losses(frame: pd.DataFrame, loss_domains: Sequence[str], source: str) -> None:
    """A per-domain loss that is the same in every row, over learning curves (checkpoints at
    several token counts) of several runs, is a placeholder or a copy error: it shifts the mean
    objective and carries no signal. (Final-only tables may hold a constant loss legitimately: a
    domain whose quantity no run changes, on a separable surface.)"""
    if frame["run_id"].nunique() < 3 or frame.groupby("run_id")["tokens"].nunique().max() < 2:
        return
    for d in loss_domains:
        values = frame[LOSS_PREFIX + d].dropna()
        if len(values) >= 3 and values.nunique() == 1:
            log.warning("%s: column `%s%s` is %g in every row: it carries no signal but enters the "
                        "mean objective; check it", source, LOSS_PREFIX, d, float(values.iloc[0]))


def _numeric(frame: pd.DataFrame, column: str, source: str) -> None:
    converted = pd.to_numeric(frame[column], errors="coerce")
    bad = converted.isna() & frame[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise BadInput(f"`{frame[column].iloc[row]}` is not a number",
                       _where(source, row, column), "give a number")
    frame[column] = converted.astype(float)


def validate(frame: pd.DataFrame, source: str = "<runs>", *,
             require: Sequence[str] = (), average_duplicates: bool = False,
             eval_weights: Mapping[str, float] | None = None,
             tokens_required: bool = True) -> RunsTable:
    """Validate a runs table held in memory. `require` names extra columns the caller needs:
    `params`, `lr`, `weights` (the `w.<domain>` group) or `loss` (an objective). Without
    `tokens_required`, a table with no `tokens` column holds one final evaluation per run."""
    frame = frame.reset_index(drop=True).copy()
    if not tokens_required and "tokens" not in frame.columns:
        frame["tokens"] = 0.0
    frame = _with_run_ids(frame, source)
    domains, loss_domains = _domains(frame, WEIGHT_PREFIX), _domains(frame, LOSS_PREFIX)
    for col in ("tokens", *[c for c in ("budget", "params", "lr", "loss", "seed") if c in frame.columns],
                *[WEIGHT_PREFIX + d for d in domains], *[LOSS_PREFIX + d for d in loss_domains]):
        _numeric(frame, col, source)
    _warn_constant_losses(frame, loss_domains, source)
    frame = _without_failed_runs(frame, source)
    _check_required(frame, _required_columns(frame, require, domains, loss_domains, source), source)
    sums: dict[str, float] = {}
    if domains:
        sums = dict(zip(frame["run_id"], frame[[WEIGHT_PREFIX + d for d in domains]].sum(axis=1)))
        _normalise_weights(frame, domains, source)
    frame = _without_duplicates(frame, source, average_duplicates)
    _default_budget(frame)
    if "loss" not in frame.columns and loss_domains:
        frame["loss"] = _default_loss(frame, loss_domains, eval_weights, source)
    return RunsTable(frame.reset_index(drop=True), source, domains, loss_domains, sums)


def _with_run_ids(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Columns checked, the required ones present, at least one row, every row with a run_id."""
    _check_columns(frame, source)
    for col in REQUIRED:
        if col not in frame.columns:
            raise BadInput(f"missing required column `{col}`", source,
                           f"add a `{col}` column{did_you_mean(col, frame.columns)} (columns found: "
                           f"{', '.join(map(str, frame.columns))})")
    if frame.empty:
        raise BadInput("the table has no rows", source, "give at least one evaluation")
    row = first_index(frame["run_id"].isna().to_numpy())
    if row is not None:
        raise BadInput("empty run_id", _where(source, row, "run_id"), "give every row a run_id")
    frame["run_id"] = frame["run_id"].astype(str)
    return frame


def _domains(frame: pd.DataFrame, prefix: str) -> tuple[str, ...]:
    return tuple(c[len(prefix):] for c in frame.columns if str(c).startswith(prefix))


def _without_failed_runs(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if "status" not in frame.columns:
        return frame
    # a run that failed or diverged at any evaluation is out entirely, earlier rows included
    bad_runs = frame.loc[frame["status"].astype(str).str.lower().isin(FAILED_STATUSES), "run_id"]
    failed = frame["run_id"].isin(set(bad_runs))
    if not failed.any():
        return frame
    names = sorted(set(frame.loc[failed, "run_id"]))
    log.warning("%s: leaving out %d failed/diverged run(s) from every fit: %s",
                source, len(names), ", ".join(names))
    frame = frame.loc[~failed]
    if frame.empty:
        raise BadInput("every run is marked failed or diverged", source, "give at least one completed run")
    return frame


def _required_columns(frame: pd.DataFrame, require: Sequence[str], domains: Sequence[str],
                      loss_domains: Sequence[str], source: str) -> list[str]:
    """The columns that must hold a finite number in every row (`tokens` and what `require` asks)."""
    required = ["tokens"]
    for need in require:
        if need == "weights":
            require_weight_columns(domains, source, columns=frame.columns)
            required += [WEIGHT_PREFIX + d for d in domains]
        elif need == "loss":
            if "loss" not in frame.columns and not loss_domains:
                raise BadInput("no `loss` or `loss.<domain>` columns", source,
                               "add per-domain validation losses or a `loss` column")
        else:
            if need not in frame.columns:
                raise BadInput(f"missing column `{need}`", source, f"add a `{need}` column")
            required.append(need)
    if "loss" in require:
        required += [LOSS_PREFIX + d for d in loss_domains] or ["loss"]
    return list(dict.fromkeys(required))


def _check_required(frame: pd.DataFrame, required: Sequence[str], source: str) -> None:
    """Finite values in the required columns; tokens >= 0; params, lr and budget > 0."""
    for col in required:
        _check_finite(frame[col].to_numpy(dtype=float), col, source, frame.index)
    row = first_index((frame["tokens"] < 0).to_numpy())
    if row is not None:
        raise BadInput("negative token count", _where(source, int(frame.index[row]), "tokens"),
                       "tokens must be >= 0")
    for col in ("params", "lr", "budget"):
        row = first_index((frame[col] <= 0).to_numpy()) if col in required else None
        if row is not None:
            raise BadInput(f"`{col}` must be positive", _where(source, int(frame.index[row]), col),
                           "give a value > 0")


def _normalise_weights(frame: pd.DataFrame, domains: Sequence[str], source: str) -> None:
    """Every row's weights present, >= 0 and not all zero; then divided by their sum, in place."""
    cols = [WEIGHT_PREFIX + d for d in domains]

    def at(r: int, c: int = 0) -> str:
        return _where(source, int(frame.index[r]), cols[c])

    frame[cols] = simplex_rows(
        frame[cols].to_numpy(dtype=float),
        [(missing, lambda r, c, _: BadInput("missing mixture weight", at(r, c),
                                            "give every domain a weight (0 if unused)")),
         (negative, lambda r, c, v: BadInput(f"negative mixture weight {v}", at(r, c),
                                             "weights must be >= 0"))],
        lambda r: BadInput("all mixture weights are zero", at(r),
                           "give at least one domain a positive weight"))


def _without_duplicates(frame: pd.DataFrame, source: str, average: bool) -> pd.DataFrame:
    """One evaluation per (run, tokens): a repeat is refused, or averaged with `average`."""
    dup = frame.duplicated(subset=["run_id", "tokens"], keep="first")
    if not dup.any():
        return frame
    if not average:
        row = int(frame.index[np.argmax(dup.to_numpy())])
        raise BadInput(f"duplicate evaluation of run `{frame.loc[row, 'run_id']}` at "
                       f"tokens={frame.loc[row, 'tokens']:g}", _where(source, row, "tokens"),
                       "remove it, or pass --average-duplicates to average repeated evaluations")
    return _average_duplicates(frame)


def _default_budget(frame: pd.DataFrame) -> None:
    """A run's budget defaults to its largest `tokens` (in place)."""
    largest = frame.groupby("run_id", sort=False)["tokens"].transform("max")
    if "budget" not in frame.columns:
        frame["budget"] = largest
    else:
        missing_budget = frame["budget"].isna()
        frame.loc[missing_budget, "budget"] = largest[missing_budget]


def _default_loss(frame: pd.DataFrame, loss_domains: Sequence[str],
                  eval_weights: Mapping[str, float] | None, source: str) -> np.ndarray:
    """The `loss` column of a table without one: the per-domain losses' mean, or their mean
    weighted by the eval mixture."""
    losses = frame[[LOSS_PREFIX + d for d in loss_domains]].to_numpy(dtype=float)
    if eval_weights is None:
        return losses.mean(axis=1)
    check_known(sorted(eval_weights), loss_domains, source,
                what="eval mixture names domains without a loss column:", fix="use domains among:",
                show=as_text)
    ew = weight_vector(eval_weights, loss_domains)
    # NaN eval weights pass, as they always have: only a sign and a zero sum are refused here
    if not on_simplex(ew, finite=False):
        raise BadInput("eval mixture weights must be >= 0 and not all zero", source)
    return losses @ (ew / ew.sum())


def _average_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    numeric = [c for c in frame.columns if c not in ("run_id", "tokens")
               and pd.api.types.is_numeric_dtype(frame[c])]
    other = [c for c in frame.columns if c not in numeric and c not in ("run_id", "tokens")]
    agg = {c: "mean" for c in numeric} | {c: "first" for c in other}
    return frame.groupby(["run_id", "tokens"], sort=False, as_index=False).agg(agg)


def read_runs(path: str | Path, *, require: Sequence[str] = (), average_duplicates: bool = False,
              eval_weights: Mapping[str, float] | None = None,
              tokens_required: bool = True) -> RunsTable:
    """Read a CSV or Parquet runs table and validate it (see `validate`)."""
    path = Path(path)
    return validate(_read_any(path), str(path), require=require,
                    average_duplicates=average_duplicates, eval_weights=eval_weights,
                    tokens_required=tokens_required)


def write_runs(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a runs table atomically, as Parquet or CSV by the file suffix."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BadInput(f"unknown runs-table format `{path.suffix}`", str(path),
                       "use a .csv, .tsv or .parquet file")
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    with atomic_path(path) as tmp:
        if fmt == "csv":
            tab = path.suffix.lower() == ".tsv"
            pacsv.write_csv(table, tmp, pacsv.WriteOptions(delimiter="\t" if tab else ","))
        else:
            pq.write_table(table, tmp)
