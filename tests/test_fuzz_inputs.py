"""Issue 11, item 5: fuzzed inputs (CI part; the full run is benchmarks/fuzz_inputs.py).

45 damaged copies of valid ``.fits.fz``, ``.fits`` and ``.fits.gz`` products (bits flipped,
truncated, header cards rewritten: tests/fuzzinputs.py, from a fixed seed) go through one real
preprocess run beside 6 intact CCDs. The job must complete; every variant is stored (it still
decodes to a valid CCD) or quarantined with a reason and a detail; inputs = stored + quarantined
+ skipped; no intact CCD is lost; no variant ends as ``unexpected_error`` (a reader failure we
did not classify); and a second run reads nothing again.
"""

import time

from desarchive import SMALL_CONF
from fuzzinputs import check_run, write_good, write_variants

from artifactspark.config import load_config
from artifactspark.features.preprocess import run_preprocess

SEED = 20261124
N_VARIANTS = 45


def test_fuzzed_inputs_are_stored_or_quarantined(spark, tmp_path):
    root = str(tmp_path / "archive")
    variants = write_variants(root, N_VARIANTS, SEED)
    good = write_good(root)
    conf = tmp_path / "small.toml"
    conf.write_text(SMALL_CONF)
    cfg = load_config(conf)
    store = str(tmp_path / "store")
    t0 = time.time()
    s = run_preprocess(spark, [root], store, cfg)
    outcomes = check_run(s, store, variants, good)
    print(f"fuzz: {N_VARIANTS} variants in {time.time() - t0:.0f} s: {dict(sorted(outcomes.items()))}")
    assert sum(outcomes.values()) == N_VARIANTS
    assert "unexpected_error" not in outcomes, s["quarantine_reasons"]
    assert outcomes.get("stored", 0) >= 1 and len(outcomes) >= 3  # the damage is varied, not all one kind
    s2 = run_preprocess(spark, [root], store, cfg)
    assert (s2["stored"], s2["quarantined"], s2["skipped"]) == (0, 0, s["inputs"])
