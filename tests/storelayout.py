"""Turning a versioned store back into the layout of the release before versions (issue 11),
to test the in-place upgrade: files straight in the band=/nite= folders, side tables flat,
no _versions/."""

from __future__ import annotations

import os
import shutil

from artifactspark.features import versions


def to_old_layout(store: str) -> None:
    """Move the current version's files up out of their leaf folders; drop every other version."""
    v = versions.open_version(store)
    for p, e in v.partitions.items():
        leaf = os.path.join(store, "features", p, f"v={e['leaf']}")
        for f in os.listdir(leaf):
            os.rename(os.path.join(leaf, f), os.path.join(store, "features", p, f))
    for d, subdirs, _ in list(os.walk(os.path.join(store, "features"))):
        for s in subdirs:
            if s.startswith("v="):
                shutil.rmtree(os.path.join(d, s))
    for t, rel in v.record["tables"].items():
        src = os.path.join(store, rel)
        for f in os.listdir(src):
            os.rename(os.path.join(src, f), os.path.join(store, t, f))
        for n in os.listdir(os.path.join(store, t)):
            if n.startswith("v="):
                shutil.rmtree(os.path.join(store, t, n))
    shutil.rmtree(os.path.join(store, "_versions"))


def current_features(store: str, columns: list[str] | None = None) -> list[dict]:
    """The current version's feature rows (pyarrow, the version's own files; [] for no store)."""
    if not os.path.isdir(os.path.join(store, "_versions")):
        return []
    return versions.open_version(store).arrow_dataset().to_table(columns=columns).to_pylist()


def current_table(store: str, name: str) -> list[dict]:
    """The current version's side table ``name`` (manifest, quarantine, label_reports) as rows."""
    import pyarrow.dataset as ds

    uri = versions.open_version(store).table_uri(name)
    if uri is None:
        return []
    path = uri.removeprefix("file://").removeprefix("file:")
    return ds.dataset(path, format="parquet").to_table().to_pylist()
