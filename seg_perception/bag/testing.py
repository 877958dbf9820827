"""A pytest helper: regression-test the pipeline on your own bags in a few lines.

    from seg_perception.bag.testing import replay_and_compare

    def test_my_bag_has_not_regressed(tmp_path):
        report = replay_and_compare("bags/drive_42", "golden/drive_42_out", tmp_path,
                                    model="segformer_b0.onnx")
        assert report.passed, report.format()

The first time (no golden yet) run ``seg-perception replay BAG --out GOLDEN`` once and
commit or archive GOLDEN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seg_perception.bag.regress import RegressionReport, Tolerances, regress
from seg_perception.bag.replay import ReplayConfig, replay


def replay_and_compare(
    bag: str | Path,
    golden: str | Path,
    workdir: str | Path,
    model: str | None = None,
    config: ReplayConfig | None = None,
    tolerances: Tolerances | None = None,
    label_source: Any | None = None,
    cloud_segmenter: Any | None = None,
) -> RegressionReport:
    """Replay ``bag`` into ``workdir`` and compare the result with ``golden``.

    ``model`` builds the 2D engine (ONNX Runtime on the CPU by default) unless a
    ``label_source`` is given; the LiDAR segmenter is the default geometric one.
    """
    config = config or ReplayConfig()
    if label_source is None and model is not None:
        from seg_perception.engines import EngineConfig, create_engine

        label_source = create_engine(EngineConfig(model=model, input_size=None, resize="none"))
    if cloud_segmenter is None and config.segment_cloud:
        from seg_perception.lidar.segmenter import GeometricCloudSegmenter

        cloud_segmenter = GeometricCloudSegmenter()
    output = Path(workdir) / "replay_output"
    replay(bag, output, config, label_source, cloud_segmenter)
    return regress(output, golden, tolerances)


def fleet_and_compare(
    bags: list[str | Path], golden: str | Path, workdir: str | Path, *options: str
) -> tuple[int, dict[str, Any]]:
    """Run ``seg-perception fleet`` on ``bags`` (paths or globs) against the ``golden``
    fleet run; returns (exit code, the fleet_report.json data). ``options`` are fleet's
    flags as on the command line (``"--workers", "2"``, ``"--model", "m.onnx"``...)::

        def test_suite_has_not_regressed(tmp_path):
            code, report = fleet_and_compare(["bags/*"], "golden/", tmp_path, "--workers", "2")
            assert code == 0, report["overall"]
    """
    import json

    from seg_perception.cli import main

    out = Path(workdir) / "fleet_output"
    code = main(["fleet", *map(str, bags), "--out", str(out), "--golden", str(golden), *options])
    report = out / "fleet_report.json"
    return code, json.loads(report.read_text()) if report.is_file() else {}
