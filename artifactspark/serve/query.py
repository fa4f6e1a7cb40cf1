"""What data engineers ask of the store and the predictions table, in Spark SQL.

:func:`register_views` makes Spark SQL temp views over one store (and, optionally, one
predictions table):

    features     every feature column except the image blobs (``image``, ``mask_frac``)
    labels       expnum, ccdnum, band, nite, inspected, label, primary_class,
                 primary_class_name, n_reports, has_false_positive, label_classes
                 (``label_classes``: the class names of ``multi_hot``, false positives excluded)
    quarantine   path, reason, detail, ...          manifest     every input and its status
    predictions  the predictions table (when given)  models      PRED/_models/*.json, one row each

The common questions are functions returning a :class:`Result` (a list of row dicts, with
``info`` saying what the answer is based on, e.g. which model version was used):

    flagged(spark, STORE, PRED, cls="Satellite", band="g", nite_from=20131101, nite_to=20131130)
    exposures(spark, STORE, PRED, min_flagged=10)
    disagreements(spark, STORE, PRED, model_version="v3")
    sql(spark, "SELECT reason, count(*) AS n FROM quarantine GROUP BY reason", STORE, PRED)

and the same from the command line (``jobs/query.py``). When the predictions table holds
several model versions and none is given, the answer uses the one scored most recently
(largest ``scored_at``) among those with predictions in the selected bands and nights, and
says so in ``info``. A CCD scored several times by one model version counts once, with its
latest score. Filters on ``band`` and ``nite`` are filters on the Hive partition columns:
Spark reads only the matching ``band=X/nite=Y`` directories (``PartitionFilters`` in the plan).

The predictions table (written by ``jobs/infer.py``): ``PRED/band=X/nite=Y/*.parquet`` with
expnum long, ccdnum short, model_name, model_version, model_kind ("cnn" | "svm"), problem
("binary" | "multiclass" | "multilabel"), p_artifact double, threshold double, flagged boolean
(p_artifact >= threshold), predicted_classes array<string> (empty for binary models),
class_probs array<float>, config_hash, scored_at timestamp; plus ``PRED/_models/<version>.json``
(the model's metadata, including its ``classes``).

Without Spark
-------------
The same table from pyarrow (Hive partitions: a filter on ``band`` / ``nite`` skips whole
directories; ``_models/`` is skipped as a hidden directory)::

    import pyarrow.dataset as ds
    d = ds.dataset(PRED, format="parquet", partitioning="hive")
    t = d.to_table(filter=(ds.field("band") == "g") & (ds.field("model_version") == "v2")
                          & ds.field("flagged"),
                   columns=["expnum", "ccdnum", "band", "nite", "p_artifact", "predicted_classes"])
    rows = t.to_pylist()

and from DuckDB (``hive_partitioning = true`` turns ``band=g/nite=20131116`` into columns)::

    import duckdb
    rows = duckdb.sql(f'''
        SELECT expnum, ccdnum, band, nite, p_artifact, predicted_classes
        FROM read_parquet('{PRED}/*/*/*.parquet', hive_partitioning = true)
        WHERE band = 'g' AND model_version = 'v2' AND flagged
        ORDER BY expnum, ccdnum''').fetchall()

Predictions against the volunteers' labels in DuckDB, a CCD scored twice by a model counted
with its latest score. The store is versioned: open its current version (or
``open_version(STORE, N)``) and read that version's files, never ``STORE/features`` itself
(it also holds the files of older versions); name the columns you need, the image blobs are
large::

    import duckdb
    from artifactspark.features.versions import open_version
    features = open_version(STORE).duckdb_source()  # read_parquet([...], hive_partitioning = true)
    confusion = duckdb.sql(f'''
        WITH p AS (
            SELECT expnum, ccdnum, band, nite, flagged
            FROM read_parquet('{PRED}/*/*/*.parquet', hive_partitioning = true)
            WHERE model_version = 'v2'
            QUALIFY row_number() OVER (PARTITION BY expnum, ccdnum ORDER BY scored_at DESC) = 1)
        SELECT p.flagged, f.label, count(*) AS n
        FROM p JOIN {features} f
          USING (expnum, ccdnum, band, nite)
        WHERE f.inspected AND f.label IN (0, 1)
        GROUP BY ALL ORDER BY ALL''').fetchall()

(``PRED`` and ``STORE`` are local paths here; pyarrow and DuckDB also read ``s3://``.)
"""

from __future__ import annotations

import contextlib
import difflib
import logging

from ..errors import ConfigError
from .views import VIEWS, _register, register_views, store_classes


class QueryError(ConfigError):
    """A query argument is invalid (unknown class or model version, a bad night range, bad SQL).

    A ConfigError, so that jobs exit with code 2 (bad arguments); the message says what is known.
    """


class Result(list):
    """The rows of an answer (dicts, in ``columns`` order) plus ``info`` about the answer:
    ``model_version`` used and why, ``truncated`` when ``limit`` cut it, the confusion matrix
    of :func:`disagreements`, ..."""

    def __init__(self, rows=(), columns=None, info=None):
        super().__init__(rows)
        self.columns = list(columns) if columns is not None else (list(self[0]) if self else [])
        self.info = dict(info or {})


def _check_nite(name: str, v):
    if v is None:
        return None
    try:
        n = int(v)
    except (TypeError, ValueError):
        n = None
    if n is None or not 19000101 <= n <= 29991231 or isinstance(v, float):
        raise QueryError(f"{name} = {v!r}: a night is YYYYMMDD, e.g. 20131115")
    return n


def _scope(band=None, nite_from=None, nite_to=None, nite=None):
    """(SQL condition on the partition columns, its parameters)."""
    nite_from, nite_to, nite = (
        _check_nite("nite_from", nite_from),
        _check_nite("nite_to", nite_to),
        _check_nite("nite", nite),
    )
    if nite is not None:
        if (nite_from is not None and nite_from != nite) or (nite_to is not None and nite_to != nite):
            raise QueryError("give either nite or nite_from / nite_to, not both")
        nite_from = nite_to = nite
    if nite_from is not None and nite_to is not None and nite_from > nite_to:
        raise QueryError(
            f"nite_from {nite_from} is after nite_to {nite_to}: the range would be empty "
            "(swap them, or give one night as both)"
        )
    conds, args = [], {}
    if band is not None:
        if not isinstance(band, str) or not band.strip():
            raise QueryError(f"band = {band!r}: give one band name, e.g. 'g'")
        conds.append("band = :band")
        args["band"] = band.strip()
    if nite_from is not None:
        conds.append("nite >= :nite_from")
        args["nite_from"] = nite_from
    if nite_to is not None:
        conds.append("nite <= :nite_to")
        args["nite_to"] = nite_to
    return " AND ".join(conds) or "TRUE", args


def known_classes(meta: dict, models: list[dict] = ()) -> list[str]:
    """The store's taxonomy (``meta``: its _store.json), then any other class a multiclass or
    multilabel model predicts (``models``: :func:`read_models`; a binary model's "classes" are
    its two outputs, never in ``predicted_classes``)."""
    classes = store_classes(meta)
    for m in models:
        if m.get("problem") != "binary":
            classes += [str(c) for c in m.get("classes") or [] if str(c) not in classes]
    return classes


def resolve_class(name: str, classes: list[str], aliases: dict | None = None) -> str:
    """The canonical class for ``name`` (exact, a taxonomy alias, or case-insensitive), or a
    QueryError listing the known classes."""
    if name in classes:
        return name
    aliases = aliases or {}
    if aliases.get(name) in classes:
        return aliases[name]
    folded = {c.casefold(): c for c in classes}
    folded.update({a.casefold(): c for a, c in aliases.items() if c in classes})
    if name.strip().casefold() in folded:
        return folded[name.strip().casefold()]
    close = difflib.get_close_matches(name, classes, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise QueryError(f"unknown class {name!r}{hint}; known classes: {', '.join(classes)}")


def _collect(df, limit: int | None):
    """(rows as dicts, truncated?) of ``df``; at most ``limit`` rows."""
    if limit is not None and limit < 0:
        raise QueryError(f"limit = {limit}: give a number >= 0")
    rows = (df.limit(limit + 1) if limit is not None else df).collect()
    truncated = limit is not None and len(rows) > limit
    if truncated:
        rows = rows[:limit]
    return [r.asDict(recursive=True) for r in rows], truncated


@contextlib.contextmanager
def _quiet_sql_errors():
    """pyspark logs every analysis error with its JVM stack; we raise a one-line QueryError instead."""
    loggers = [logging.getLogger(n) for n in ("SQLQueryContextLogger", "DataFrameQueryContextLogger")]
    before = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, b in zip(loggers, before):
            lg.disabled = b


def _sql(spark, text: str, args: dict | None = None):
    from pyspark.errors import AnalysisException

    with _quiet_sql_errors():
        try:
            return spark.sql(text, args=args or None)
        except AnalysisException as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise QueryError(f"SQL error: {msg} (views: {', '.join(_live_views(spark))})") from None


def _live_views(spark) -> list[str]:
    return [v for v in VIEWS if spark.catalog.tableExists(v)]


def choose_model(
    spark, model_version: str | None = None, scope: str = "TRUE", args: dict | None = None, need_classes: bool = False
) -> dict:
    """The model version an answer uses, as ``info``: the given one, else the one scored most
    recently among those with predictions in ``scope`` (class-predicting ones when
    ``need_classes``). Needs the ``predictions`` view."""
    versions = _sql(
        spark,
        f"""
        SELECT model_version, max(scored_at) AS last_scored_at, count(*) AS n_rows,
               first(problem) AS problem, first(model_kind) AS model_kind, first(model_name) AS model_name
        FROM predictions WHERE {scope}
        GROUP BY model_version ORDER BY last_scored_at DESC, model_version DESC""",
        args,
    ).collect()
    in_scope = [r["model_version"] for r in versions]
    info = {"model_versions_in_scope": in_scope}
    if model_version is not None:
        if model_version not in in_scope:
            everywhere = [
                r[0]
                for r in _sql(spark, "SELECT DISTINCT model_version FROM predictions ORDER BY model_version").collect()
            ]
            if model_version not in everywhere:
                raise QueryError(
                    f"unknown model version {model_version!r}; the predictions table holds: "
                    f"{', '.join(map(str, everywhere)) or 'none'}"
                )
            info.update(
                model_version=model_version,
                model_choice="given",
                note=f"model {model_version} has no predictions in the selected band/nights",
            )
            return info
        r = versions[in_scope.index(model_version)]
        info.update(model_version=model_version, model_choice="given")
    else:
        candidates = [r for r in versions if not need_classes or r["problem"] != "binary"]
        if not candidates:
            if not versions:
                info.update(model_version=None, model_choice="none", note="no predictions in the selected band/nights")
                return info
            raise QueryError(
                f"a class was asked for, but every model with predictions in the selected "
                f"band/nights is binary (predicts no class): {', '.join(in_scope)}; "
                "omit the class to list flagged CCDs"
            )
        r = candidates[0]
        skipped = [x["model_version"] for x in versions if x not in candidates]
        why = (
            f"most recent by scored_at of {len(versions)} model versions with predictions in the selected band/nights"
            if len(versions) > 1
            else "the only model version with predictions in the selected band/nights"
        )
        if skipped:
            why += f"; binary models skipped because a class was asked for: {', '.join(skipped)}"
        info.update(model_version=r["model_version"], model_choice=why)
    info.update(
        problem=r["problem"], model_kind=r["model_kind"], model_name=r["model_name"], last_scored_at=r["last_scored_at"]
    )
    if need_classes and r["problem"] == "binary":
        raise QueryError(
            f"model {r['model_version']} is binary: it predicts no classes. Omit the class, or "
            f"choose a multiclass/multilabel model (model versions here: {', '.join(in_scope)})"
        )
    return info


def _latest_scores(scope: str) -> str:
    """SQL: the chosen model's predictions in scope, one row per CCD (its latest score)."""
    return f"""
        SELECT * FROM (
            SELECT *, row_number() OVER (PARTITION BY expnum, ccdnum ORDER BY scored_at DESC) AS _rank
            FROM predictions WHERE {scope} AND model_version = :model_version)
        WHERE _rank = 1"""


def _prepare(spark, store_uri, predictions_uri, band, nite_from, nite_to, nite, model_version, cls):
    scope, args = _scope(band, nite_from, nite_to, nite)
    if predictions_uri is None:
        raise QueryError("this question needs the predictions table: give --predictions (jobs/infer.py's output)")
    _, meta, models = _register(spark, store_uri, predictions_uri)
    canon = None
    if cls is not None:
        aliases = ((meta.get("config") or {}).get("taxonomy") or {}).get("aliases") or {}
        canon = resolve_class(cls, known_classes(meta, models), aliases)
    info = choose_model(spark, model_version, scope, args, need_classes=cls is not None)
    info.update(
        {
            k: v
            for k, v in (
                ("class", canon),
                ("band", band),
                ("nite_from", args.get("nite_from")),
                ("nite_to", args.get("nite_to")),
            )
            if v is not None
        }
    )
    return scope, {**args, "model_version": info["model_version"]}, canon, info


def flagged_frame(
    spark,
    store_uri: str,
    predictions_uri: str,
    cls: str | None = None,
    band: str | None = None,
    nite_from=None,
    nite_to=None,
    model_version: str | None = None,
    nite=None,
):
    """(DataFrame, info) behind :func:`flagged` (for ``explain()`` or further Spark work)."""
    scope, args, canon, info = _prepare(
        spark, store_uri, predictions_uri, band, nite_from, nite_to, nite, model_version, cls
    )
    hit = "array_contains(p.predicted_classes, :cls)" if canon is not None else "p.flagged"
    if canon is not None:
        args["cls"] = canon
    df = _sql(
        spark,
        f"""
        SELECT p.band, p.nite, p.expnum, p.ccdnum, p.p_artifact, p.threshold, p.flagged, p.predicted_classes,
               l.label, l.primary_class_name, l.label_classes, p.model_version, p.scored_at
        FROM ({_latest_scores(scope)}) p
        LEFT JOIN labels l ON l.expnum = p.expnum AND l.ccdnum = p.ccdnum AND l.band = p.band AND l.nite = p.nite
        WHERE {hit}
        ORDER BY p.band, p.nite, p.expnum, p.ccdnum""",
        args,
    )
    return df, info


def flagged(
    spark,
    store_uri: str,
    predictions_uri: str,
    cls: str | None = None,
    band: str | None = None,
    nite_from=None,
    nite_to=None,
    model_version: str | None = None,
    nite=None,
    limit: int | None = None,
) -> Result:
    """CCDs the model flags (``cls=None``) or whose predicted classes include ``cls``, in
    ``band`` and nights ``nite_from``..``nite_to`` (inclusive), with their volunteer labels.

    Rows: band, nite, expnum, ccdnum, p_artifact, threshold, flagged, predicted_classes, label,
    primary_class_name, label_classes (None where the store has no such CCD), model_version,
    scored_at; sorted by band, nite, expnum, ccdnum.
    """
    df, info = flagged_frame(spark, store_uri, predictions_uri, cls, band, nite_from, nite_to, model_version, nite)
    rows, truncated = _collect(df, limit)
    info.update(question="flagged", truncated=truncated)
    return Result(rows, df.columns, info)


def exposures(
    spark,
    store_uri: str,
    predictions_uri: str,
    min_flagged: int = 1,
    cls: str | None = None,
    band: str | None = None,
    nite_from=None,
    nite_to=None,
    model_version: str | None = None,
    nite=None,
    limit: int | None = None,
) -> Result:
    """Exposures with at least ``min_flagged`` flagged CCDs (CCDs predicted as ``cls`` with a
    class), most flagged first.

    Rows: expnum, band, nite, n_scored (CCDs the model scored), n_flagged, frac_flagged,
    max_p_artifact, classes (the classes predicted for the flagged CCDs), model_version.
    """
    if isinstance(min_flagged, bool) or not isinstance(min_flagged, int) or min_flagged < 0:
        raise QueryError(f"min_flagged = {min_flagged!r}: give a whole number >= 0")
    scope, args, canon, info = _prepare(
        spark, store_uri, predictions_uri, band, nite_from, nite_to, nite, model_version, cls
    )
    hit = "array_contains(predicted_classes, :cls)" if canon is not None else "flagged"
    if canon is not None:
        args["cls"] = canon
    df = _sql(
        spark,
        f"""
        SELECT expnum, band, nite, count(*) AS n_scored, CAST(sum(CAST(hit AS INT)) AS INT) AS n_flagged,
               round(avg(CAST(hit AS INT)), 4) AS frac_flagged, max(p_artifact) AS max_p_artifact,
               array_sort(array_distinct(flatten(collect_list(CASE WHEN hit THEN predicted_classes END)))) AS classes,
               first(model_version) AS model_version
        FROM (SELECT *, coalesce({hit}, FALSE) AS hit FROM ({_latest_scores(scope)}))
        GROUP BY expnum, band, nite
        HAVING n_flagged >= :min_flagged
        ORDER BY n_flagged DESC, expnum""",
        {**args, "min_flagged": min_flagged},
    )
    rows, truncated = _collect(df, limit)
    info.update(question="exposures", min_flagged=min_flagged, truncated=truncated)
    return Result(rows, df.columns, info)


def disagreements(
    spark,
    store_uri: str,
    predictions_uri: str,
    model_version: str | None = None,
    band: str | None = None,
    nite_from=None,
    nite_to=None,
    nite=None,
    limit: int | None = None,
) -> Result:
    """Where the model and the volunteers disagree, among inspected CCDs with a label (0 or 1).

    ``info["confusion"]``: the live binary confusion matrix flagged vs label (tp: flagged and
    label 1, fp: flagged and label 0, fn: not flagged and label 1, tn: neither), with
    ``n_compared``, ``n_scored`` (CCDs scored in scope), precision, recall and accuracy.
    Rows: the disagreeing CCDs (``disagreement`` = "flagged_but_clean" | "missed_artifact").
    """
    scope, args, _, info = _prepare(
        spark, store_uri, predictions_uri, band, nite_from, nite_to, nite, model_version, None
    )
    pairs = f"""
        SELECT p.band, p.nite, p.expnum, p.ccdnum, p.p_artifact, p.threshold, p.flagged, p.predicted_classes,
               l.label, l.primary_class_name, l.label_classes, l.has_false_positive, p.model_version
        FROM ({_latest_scores(scope)}) p
        JOIN labels l ON l.expnum = p.expnum AND l.ccdnum = p.ccdnum AND l.band = p.band AND l.nite = p.nite
        WHERE l.inspected AND l.label IN (0, 1)"""
    c = (
        _sql(
            spark,
            f"""
        SELECT count_if(flagged AND label = 1) AS tp, count_if(flagged AND label = 0) AS fp,
               count_if(NOT flagged AND label = 1) AS fn, count_if(NOT flagged AND label = 0) AS tn,
               (SELECT count(*) FROM ({_latest_scores(scope)})) AS n_scored
        FROM ({pairs})""",
            args,
        )
        .first()
        .asDict()
    )
    c = {k: int(v or 0) for k, v in c.items()}
    c["n_compared"] = c["tp"] + c["fp"] + c["fn"] + c["tn"]
    c["precision"] = round(c["tp"] / (c["tp"] + c["fp"]), 4) if c["tp"] + c["fp"] else None
    c["recall"] = round(c["tp"] / (c["tp"] + c["fn"]), 4) if c["tp"] + c["fn"] else None
    c["accuracy"] = round((c["tp"] + c["tn"]) / c["n_compared"], 4) if c["n_compared"] else None
    df = _sql(
        spark,
        f"""
        SELECT CASE WHEN flagged THEN 'flagged_but_clean' ELSE 'missed_artifact' END AS disagreement, *
        FROM ({pairs}) WHERE flagged <> (label = 1)
        ORDER BY disagreement, band, nite, expnum, ccdnum""",
        args,
    )
    rows, truncated = _collect(df, limit)
    info.update(question="disagreements", confusion=c, truncated=truncated)
    return Result(rows, df.columns, info)


def sql(spark, query: str, store_uri: str, predictions_uri: str | None = None, limit: int | None = None) -> Result:
    """Any Spark SQL over the views of :func:`register_views`."""
    if not query or not query.strip():
        raise QueryError('no SQL given (e.g. "SELECT band, count(*) FROM features GROUP BY band")')
    views = register_views(spark, store_uri, predictions_uri)
    df = _sql(spark, query)
    from pyspark.errors.exceptions.captured import CapturedException

    try:
        with _quiet_sql_errors():
            rows, truncated = _collect(df, limit)
    except CapturedException as e:  # errors in the data the query computes (1/0, bad casts, ...)
        state = e.getSqlState() or ""
        if not state.startswith(("22", "42")):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QueryError(f"SQL error: {msg}") from None
    return Result(rows, df.columns, {"question": "sql", "views": views, "truncated": truncated})
