#!/usr/bin/env bash
# artifactspark launcher: set-up, demo, tests, and spark-submit for every job.
#
#   ./submit.sh demo [--size small|medium|large] [--out DIR]   set up, then simulate + preprocess a sample archive locally
#   ./submit.sh test [PYTEST ARGS]                             set up, ruff (lint, format), then the whole test suite
#   ./submit.sh setup                                          create / refresh .venv only
#   ./submit.sh [OPTIONS] JOB [JOB ARGS]                       spark-submit jobs/JOB.py
#
# OPTIONS (before JOB):
#   --profile NAME      Spark settings from conf/spark/NAME.conf (local [default], standalone, yarn, k8s)
#   --master URL        override the profile's master (local[*], spark://host:7077, yarn, k8s://...)
#   --config FILE       pipeline config passed to the job (default conf/pipeline.toml)
#   --spark-conf K=V    extra Spark setting; repeatable
# The package is shipped to the executors as build/artifactspark.zip (--py-files); the executors'
# Python must have the third-party dependencies (see README, "Running on a cluster").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ARTIFACTSPARK_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

die() { echo "submit.sh: $*" >&2; exit 2; }

check_java() {
  local java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
  command -v "$java" >/dev/null 2>&1 || die "Java not found: artifactspark needs Java 17 or newer (install a JDK 17 and put java on PATH or set JAVA_HOME)"
  local v
  v=$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\(\.\([0-9]*\)\)\{0,1\}.*/\1 \3/p' | head -n1)
  local major=${v%% *}
  [ "$major" = "1" ] && major=${v##* }
  [ -n "$major" ] && [ "$major" -ge 17 ] 2>/dev/null || die "Java ${major:-?} found; artifactspark needs Java 17 or newer"
}

find_python() {
  for c in "${ARTIFACTSPARK_PYTHON:-}" python3.11 python3; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  die "Python 3.11 not found (set ARTIFACTSPARK_PYTHON to a python3.11 executable)"
}

setup() {
  check_java
  local stamp="$VENV/.artifactspark-installed" want
  want=$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)
  if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  if [ ! -x "$PY" ]; then
    echo "submit.sh: creating $VENV" >&2
    "$(find_python)" -m venv "$VENV"
  fi
  # pip's output (warnings, setuptools' editable-install banner) goes to a log, shown only on failure
  local log="$VENV/setup.log"
  echo "submit.sh: installing artifactspark and its pinned dependencies into $VENV (first time: a few minutes; log: $log)" >&2
  if ! { "$PY" -m pip install --disable-pip-version-check -q --upgrade pip &&
         "$PY" -m pip install --disable-pip-version-check -q -e "$ROOT[test]"; } >"$log" 2>&1; then
    cat "$log" >&2
    die "installing the dependencies failed (the output above is in $log)"
  fi
  echo "$want" > "$stamp"
}

# Spark's JVM logs at WARN without the known-harmless warnings (conf/log4j2.properties), and a
# local run binds to the loopback address (no hostname warning); ARTIFACTSPARK_LOG=DEBUG: Spark's defaults.
quiet_spark() {
  local profile="$1"
  [ "${ARTIFACTSPARK_LOG:-}" = "DEBUG" ] && return 0
  export LOG4J_CONFIGURATION_FILE="${LOG4J_CONFIGURATION_FILE:-$ROOT/conf/log4j2.properties}"
  if [ "$profile" = "local" ]; then export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"; fi
}

build_zip() {
  mkdir -p "$ROOT/build"
  "$PY" - "$ROOT" <<'PYEOF'
import os, sys, tempfile, zipfile
root = sys.argv[1]
out = os.path.join(root, "build", "artifactspark.zip")
fd, tmp = tempfile.mkstemp(prefix=".artifactspark-", suffix=".zip", dir=os.path.dirname(out))
os.close(fd)  # a unique temporary name: concurrent submits (cron + a manual job) never share it
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, files in os.walk(os.path.join(root, "artifactspark")):
        for f in sorted(files):
            if f.endswith(".py"):
                p = os.path.join(d, f)
                z.write(p, os.path.relpath(p, root))
os.chmod(tmp, 0o644)
os.replace(tmp, out)
PYEOF
  echo "$ROOT/build/artifactspark.zip"
}

run_job() {
  local profile="${ARTIFACTSPARK_PROFILE:-local}" master="" config="" extra=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --profile) profile="$2"; shift 2 ;;
      --master) master="$2"; shift 2 ;;
      --config) config="$2"; shift 2 ;;
      --spark-conf) extra+=(--conf "$2"); shift 2 ;;
      -*) die "unknown option $1 (options go before the job name; see the top of submit.sh)" ;;
      *) break ;;
    esac
  done
  [ $# -ge 1 ] || die "no job given (jobs: $(ls "$ROOT/jobs" | sed -n 's/^\([a-z][a-z_]*\)\.py$/\1/p' | tr '\n' ' '))"
  local job="$1"; shift
  local script="$ROOT/jobs/$job.py"
  [ -f "$job" ] && script="$job"
  [ -f "$script" ] || die "no such job: $job (jobs: $(ls "$ROOT/jobs" | sed -n 's/^\([a-z][a-z_]*\)\.py$/\1/p' | tr '\n' ' '))"
  local props="$ROOT/conf/spark/$profile.conf"
  [ -f "$props" ] || die "no Spark profile $profile (files: $(ls "$ROOT/conf/spark" | tr '\n' ' '))"
  setup
  local zip; zip=$(build_zip)
  quiet_spark "$profile"
  export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$PY}"
  export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$PY}"
  local cmd=("$VENV/bin/spark-submit" --properties-file "$props" --py-files "$zip" "${extra[@]}")
  [ -n "$master" ] && cmd+=(--master "$master")
  cmd+=("$script")
  [ -n "$config" ] && cmd+=(--config "$config")
  exec "${cmd[@]}" "$@"
}

case "${1:-}" in
  setup) setup ;;
  test) shift; setup; cd "$ROOT"
        # lint and format first (pyproject.toml [tool.ruff]); CI runs this command
        "$VENV/bin/ruff" check --quiet . || die "ruff check found problems (see above; ruff check --fix fixes some)"
        "$VENV/bin/ruff" format --check --quiet . || die "ruff format would change the files above: run $VENV/bin/ruff format"
        exec "$PY" -m pytest "$@" ;;
  demo) shift; setup; exec "$PY" "$ROOT/jobs/demo.py" "$@" ;;
  ""|-h|--help) sed -n '2,17p' "$0" ;;
  *) run_job "$@" ;;
esac
