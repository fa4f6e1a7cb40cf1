"""Fuzzed inputs, full run (issue 11, item 5; the CI part is tests/test_fuzz_inputs.py).

  .venv/bin/python benchmarks/fuzz_inputs.py [--variants 270] [--seed 11] [--data benchmarks/data] [--record]

Writes ``--variants`` damaged copies of valid ``.fits.fz``, ``.fits`` and ``.fits.gz`` CCDs
(tests/fuzzinputs.py: bits flipped, truncated, header cards rewritten; every (damage,
compression) pair equally often) beside 6 intact CCDs, runs one real preprocess job over them
(local[2], the small test CCD shape) and checks: the job completes; every variant is stored or
quarantined with a reason; inputs = stored + quarantined + skipped; no intact CCD is lost. Prints
the outcome counts by reason, overall and per (damage, compression), and the time; ``--record``
appends them to benchmarks/RESULTS.md. Exit 1 if an invariant fails.
"""

import argparse
import collections
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", type=int, default=270)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--data", default=str(HERE / "data"))
    p.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    p.add_argument(
        "--no-known-crashes",
        action="store_true",
        help="leave out the two reader crashes the fuzzer found earlier (added by default)",
    )
    args = p.parse_args(argv)

    from desarchive import SMALL_CONF, write_segfault_gz, write_sigfpe_fz
    from fuzzinputs import FIRST_EXPNUM, check_run, write_good, write_variants
    from storelayout import current_table

    from artifactspark.config import load_config
    from artifactspark.features.preprocess import run_preprocess
    from artifactspark.spark import get_spark

    work = os.path.join(args.data, f"fuzz-{args.seed}-{args.variants}")
    shutil.rmtree(work, ignore_errors=True)
    root, store = os.path.join(work, "archive"), os.path.join(work, "store")
    t0 = time.time()
    variants = write_variants(root, args.variants, args.seed)
    if not args.no_known_crashes:  # found by fuzzing header cards: regression variants
        img = write_segfault_gz(root, FIRST_EXPNUM - 2, 1)[0]
        variants[img] = (".gz", "known-crash", "header PCOUNT=-2147483648 in MSK")
        img = write_sigfpe_fz(root, FIRST_EXPNUM - 2, 2)[0]
        variants[img] = (".fz", "known-crash", "header ZNAXIS2='' in SCI")
    good = write_good(root)
    t_write = time.time() - t0
    conf = os.path.join(work, "small.toml")
    with open(conf, "w") as f:
        f.write(SMALL_CONF)
    cfg = load_config(conf)
    spark = get_spark("fuzz-inputs", master="local[2]", conf={"spark.ui.enabled": "false"})
    t0 = time.time()
    try:
        summary = run_preprocess(spark, [root], store, cfg)
        job_ok = True
    except Exception as e:  # the invariant under test: report it, do not hide it
        summary, job_ok = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}, False
    t_job = time.time() - t0
    outcomes, per, crashes, problem = {}, collections.defaultdict(collections.Counter), [], None
    if job_ok:
        try:
            outcomes = check_run(summary, store, variants, good)
        except AssertionError as e:
            problem = str(e)
        man = {r["path"]: r for r in current_table(store, "manifest")}
        for path, (comp, kind, what) in variants.items():
            m = man.get("file:" + os.path.abspath(path))
            key = "stored" if m and m["status"] == "stored" else (m["reason"] if m else "MISSING")
            per[(kind, comp)][key] += 1
            if key in ("worker_crash", "unexpected_error"):
                crashes.append((os.path.basename(path), comp, kind, what, m["detail"]))
    spark.stop()

    ok = job_ok and problem is None
    cmd = f".venv/bin/python benchmarks/fuzz_inputs.py --variants {args.variants} --seed {args.seed}"
    lines = [
        f"    {cmd}",
        "",
        f"{args.variants} fuzzed CCDs + {len(variants) - args.variants} known crash files + {len(good)} intact ones, "
        "one preprocess run on local[2] (2 cores, shared):",
        f"job {'completed' if job_ok else 'FAILED: ' + summary.get('error', '')} in {t_job:.0f} s "
        f"(writing the variants: {t_write:.0f} s); invariants {'hold' if ok else 'BROKEN: ' + str(problem)}.",
    ]
    if job_ok:
        lines += [
            f"Summary: inputs {summary['inputs']} = stored {summary['stored']} + quarantined "
            f"{summary['quarantined']} + skipped {summary['skipped']}; all {len(good)} intact CCDs stored.",
            "",
            "| variants by outcome | " + " | ".join(sorted(outcomes)) + " |",
            "|---|" + "---|" * len(outcomes),
            "| all | " + " | ".join(str(outcomes[k]) for k in sorted(outcomes)) + " |",
        ]
        for kind, comp in sorted(per):
            lines.append(f"| {kind} {comp} | " + " | ".join(str(per[(kind, comp)][k]) for k in sorted(outcomes)) + " |")
        lines.append("")
        if crashes:
            lines.append(f"Reader crashes isolated ({len(crashes)}):")
            lines += [f"- {c[1]} {c[2]} ({c[3]}): {c[0]}, {c[4]}" for c in crashes]
        else:
            lines.append("Reader crashes isolated: none with this seed.")
    text = "\n".join(lines)
    print(text)
    print(json.dumps({"ok": ok, "variants": args.variants, "outcomes": outcomes, "seconds": round(t_job, 1)}))
    if args.record:
        with open(HERE / "RESULTS.md", "a") as f:
            f.write(f"\n## Fuzzed inputs, seed {args.seed} (issue 11)\n\n{text}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
