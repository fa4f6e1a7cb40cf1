"""submit.sh and the Java check: clear one-line errors before anything heavy starts."""

import os
import subprocess

import pytest
from conftest import ROOT

from artifactspark.errors import EnvironmentProblem
from artifactspark.spark import check_java


def fake_java(tmp_path, version_line):
    d = tmp_path / "fakejdk" / "bin"
    d.mkdir(parents=True)
    j = d / "java"
    j.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    j.chmod(0o755)
    return tmp_path / "fakejdk"


@pytest.mark.parametrize(
    "line,ok",
    [
        ('openjdk version "17.0.15" 2025-04-15', True),
        ('openjdk version "21" 2023-09-19', True),
        ('openjdk version "11.0.2" 2019-01-15', False),
        ('java version "1.8.0_292"', False),
    ],
)
def test_java_version_check(tmp_path, monkeypatch, line, ok):
    home = fake_java(tmp_path, line)
    monkeypatch.setenv("JAVA_HOME", str(home))
    if ok:
        assert "version" in check_java()
    else:
        with pytest.raises(EnvironmentProblem, match="needs Java 17 or newer"):
            check_java()
    env = {**os.environ, "JAVA_HOME": str(home)}
    out = subprocess.run([str(ROOT / "submit.sh"), "setup"], env=env, capture_output=True, text=True)
    if ok:
        assert out.returncode == 0, out.stderr
    else:
        assert out.returncode == 2
        assert out.stderr.strip().count("\n") == 0 and "needs Java 17 or newer" in out.stderr


def test_missing_java(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nojdk"))
    with pytest.raises(EnvironmentProblem, match="Java not found"):
        check_java()
    out = subprocess.run(
        [str(ROOT / "submit.sh"), "setup"],
        env={**os.environ, "JAVA_HOME": str(tmp_path / "nojdk")},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Java not found" in out.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--profile", "nope", "preprocess"], "no Spark profile nope"),
        (["nosuchjob"], "no such job: nosuchjob"),
        (["--bogus", "preprocess"], "unknown option --bogus"),
    ],
)
def test_submit_usage_errors(args, needle):
    out = subprocess.run([str(ROOT / "submit.sh"), *args], capture_output=True, text=True)
    assert out.returncode == 2 and needle in out.stderr
