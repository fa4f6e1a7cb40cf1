"""jobs/simulate.py on local[2]: 2 exposures x 3 small CCDs, labels and truth written, summary printed."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "jobs"))


def test_simulate_job_local2(tmp_path, capsys, caplog):
    import logging

    import simulate as job

    caplog.set_level(logging.INFO, logger="artifactspark.progress")

    conf = tmp_path / "sim.toml"
    conf.write_text("[input]\nccd_shape = [512, 256]\n[simulate]\nartifact_share = 0.7\n")
    out = tmp_path / "arch"
    rc = job.main(
        [
            "--output",
            str(out),
            "--exposures",
            "2",
            "--ccds",
            "1-2,31",
            "--seed",
            "4",
            "--config",
            str(conf),
            "--master",
            "local[2]",
        ]
    )
    assert rc == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out.strip().splitlines()[-1])
    assert summary["ccds"] == 6 and summary["job"] == "simulate"
    # progress: the closing count is logged even when the job ends before the first 30 s line
    assert any(m.startswith("simulate: 6/6 CCDs done") for m in caplog.messages), caplog.messages
    assert len(list(out.rglob("*_immasked.fits.fz"))) == 6 and len(list(out.rglob("*_bkg.fits.fz"))) == 6
    assert (out / "labels" / "checker_export.json").exists() and (out / "labels" / "truth.parquet").exists()
    from artifactspark.config import load_config
    from artifactspark.features.labels import load_labels

    labels = load_labels(str(out / "labels" / "checker_export.json"), load_config(conf))
    assert labels.rejected == {} and labels.unknown_classes == {}
    gal = tmp_path / "gal"
    assert job.main(["gallery", "--archive", str(out), "--out", str(gal), "--config", str(conf)]) == 0
    n_classes = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["classes"]
    assert len(list(gal.glob("*.png"))) == n_classes


def test_bad_arguments_exit_2(tmp_path):
    import simulate as job

    assert job.main(["--output", str(tmp_path), "--exposures", "0"]) == 2
    assert job.main(["--output", str(tmp_path), "--exposures", "1", "--ccds", "x"]) == 2
