"""Face recognition outside training: pair-score files and the masked-pair severity ladder."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import CONFIG_ROOT, load_config
from harness.core.portable import resolve_path
from harness.run.experiment import run_experiment
from tasks.face_recognition.verification import verification_metrics

runner = CliRunner()


def _scores(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = list(csv.DictReader(Path(path).open()))
    assert list(rows[0]) == ["pair", "first", "second", "same", "score"]
    return np.array([float(r["score"]) for r in rows]), np.array([r["same"] == "1" for r in rows])


def test_pair_scores_and_masked_severity_ladder(tiny_faces, tmp_path):
    cfg = load_config(CONFIG_ROOT / "face_recognition/default.yaml", [*tiny_faces, "method=clean"])
    outcome = run_experiment(cfg)
    files = {}
    for record in outcome.records:
        assert record.predictions["format"] == "pair_scores_csv"
        scores, same = _scores(record.predictions["file"])
        files[record.split] = scores
        # The csv alone gives back the recorded verification metrics.
        recomputed = verification_metrics(scores, same)
        assert recomputed["accuracy"] == pytest.approx(record.metrics["accuracy"], abs=1e-9)

    result = runner.invoke(app, ["eval", str(outcome.run_dir), "--severity", "0,2,4"])
    assert result.exit_code == 0, result.output
    ladder = {
        r["severity"]: r
        for r in (json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.eval-*"))
    }
    assert sorted(ladder) == [0, 2, 4] and {r["split"] for r in ladder.values()} == {"masked_val"}
    roots = {"work": outcome.run_dir.parent}
    level = {k: _scores(resolve_path(r["predictions"]["file"], roots))[0] for k, r in ladder.items()}
    # Level 0 leaves the second images clean: the clean pairs' scores (the crops went through a PNG).
    assert level[0] == pytest.approx(files["clean_val"], abs=1e-5)
    # Level 2 is the default masked split itself.
    assert np.array_equal(level[2], files["masked_val"])
    assert not np.allclose(level[4], level[2])
