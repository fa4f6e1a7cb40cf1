"""Driver-side file-system operations on any Hadoop URI (file://, hdfs://, s3a://, ...).

They go through the JVM's Hadoop FileSystem so that the store can live wherever Spark can
write. Only metadata operations (list, rename, delete, small text files) happen here; bulk
data always moves on the executors.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse


def to_uri(path: str) -> str:
    """A local path becomes an absolute file:// URI; URIs pass through."""
    if urlparse(path).scheme:
        return path.rstrip("/") if len(path) > 8 else path
    return "file://" + os.path.abspath(path)


def join(base: str, *parts: str) -> str:
    """``base`` and ``parts`` joined with single slashes (URIs and paths alike)."""
    return "/".join([base.rstrip("/")] + [p.strip("/") for p in parts])


class HadoopFS:
    """Files through Spark's Hadoop FileSystem (``file://``, ``hdfs://``, ``s3a://``, ...) from the driver."""

    def __init__(self, spark, uri: str):
        self._jvm = spark._jvm
        self._conf = spark._jsc.hadoopConfiguration()
        self._fs = self._path(uri).getFileSystem(self._conf)

    def _path(self, uri: str):
        return self._jvm.org.apache.hadoop.fs.Path(uri)

    def exists(self, uri: str) -> bool:
        """Does ``uri`` exist?"""
        return bool(self._fs.exists(self._path(uri)))

    def status(self, uri: str) -> tuple[int, int] | None:
        """``(size in bytes, modification time in ms)`` of the file ``uri``; None if it is gone."""
        try:
            st = self._fs.getFileStatus(self._path(uri))
        except Exception as e:  # py4j's error for java.io.FileNotFoundException
            if "FileNotFoundException" in str(e):
                return None
            raise
        return int(st.getLen()), int(st.getModificationTime())

    def mkdirs(self, uri: str) -> None:
        """Create the directory ``uri`` and its parents."""
        self._fs.mkdirs(self._path(uri))

    def delete(self, uri: str, recursive: bool = True) -> None:
        """Delete ``uri`` (a directory with its contents when ``recursive``) if it exists."""
        if self.exists(uri):
            self._fs.delete(self._path(uri), recursive)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (creating ``dst``'s parent); OSError if the filesystem refuses."""
        parent = self._path(dst).getParent()
        if parent is not None and not self._fs.exists(parent):
            self._fs.mkdirs(parent)
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"rename {src} -> {dst} failed")

    def list_dirs(self, uri: str) -> list[str]:
        """The URIs of the directories directly under ``uri`` ([] if it does not exist)."""
        if not self.exists(uri):
            return []
        return [s.getPath().toString() for s in self._fs.listStatus(self._path(uri)) if s.isDirectory()]

    def list_partitions(self, uri: str, depth: int) -> list[str]:
        """Relative Hive partition dirs ("band=r/nite=20131115") ``depth`` levels below ``uri``."""
        level = [("", uri)]
        for _ in range(depth):
            level = [
                (f"{rel}/{d.rstrip('/').rsplit('/', 1)[-1]}".lstrip("/"), d)
                for rel, base in level
                for d in self.list_dirs(base)
                if "=" in d.rstrip("/").rsplit("/", 1)[-1]
            ]
        return sorted(rel for rel, _ in level)

    def list_names(self, uri: str) -> list[str]:
        """The names of the entries directly under ``uri`` ([] if it does not exist)."""
        if not self.exists(uri):
            return []
        return [s.getPath().getName() for s in self._fs.listStatus(self._path(uri))]

    def read_text(self, uri: str) -> str | None:
        """The UTF-8 text of the file ``uri``, or None if it does not exist."""
        if not self.exists(uri):
            return None
        stream = self._fs.open(self._path(uri))
        try:
            reader = self._jvm.java.io.BufferedReader(self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
            lines = []
            line = reader.readLine()
            while line is not None:
                lines.append(line)
                line = reader.readLine()
            return "\n".join(lines)
        finally:
            stream.close()

    def create_exclusive(self, uri: str, text: str) -> bool:
        """Create ``uri`` with ``text`` unless it exists: O_EXCL locally, create(overwrite=false)
        elsewhere (atomic on HDFS; object stores give no such guarantee)."""
        from py4j.protocol import Py4JJavaError

        if urlparse(uri).scheme in ("", "file"):  # Hadoop's local create() is check-then-open
            try:
                fd = os.open(urlparse(uri).path or uri, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            except FileNotFoundError:
                os.makedirs(os.path.dirname(urlparse(uri).path or uri), exist_ok=True)
                return self.create_exclusive(uri, text)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return True
        try:
            out = self._fs.create(self._path(uri), False)
        except Py4JJavaError as e:
            if "FileAlreadyExists" in str(e.java_exception.getClass().getName()) or self.exists(uri):
                return False
            raise
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        return True

    def write_text_atomic(self, uri: str, text: str) -> None:
        """Write to a temporary name beside ``uri``, then rename over it."""
        tmp = uri + ".tmp"
        out = self._fs.create(self._path(tmp), True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        if self.exists(uri):
            self._fs.delete(self._path(uri), False)
        self.rename(tmp, uri)
