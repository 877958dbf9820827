"""``seg-perception fleet`` on a local Ray with 2 workers, over generated bags.

- Each bag's output equals what a serial ``replay`` of it writes (labels, lidar classes,
  label images, stored configuration); the report lists every bag.
- A corrupt bag among them is reported and the rest complete; a rerun skips finished bags.
- A changed configuration (occlusion off) is a regression in every bag: exit 1.
- Bad input (a pattern matching nothing, golden run missing bags, an unreachable cluster,
  a folder that is not a bag) is one line and exit 2, before Ray starts.

The issue's 40-bag run is ``python bench/bench_fleet.py`` (it also times serial replay
against 1 and 2 workers); here 5 bags of one frame keep the suite short.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

pytest.importorskip("ray", reason="needs ray (pip install ray)")
pytest.importorskip("onnxruntime", reason="needs onnxruntime")

from onnx_models import label_set_yaml, palette_model

from seg_perception.bag.regress import read_output
from seg_perception.bag.replay import ReplayConfig, replay
from seg_perception.bag.scene_bag import write_scene_bag
from seg_perception.bag.testing import fleet_and_compare
from seg_perception.cli import main

BAGS = 5


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    for index in range(BAGS):
        write_scene_bag(root / "bags" / f"drive_{index:02d}", frames=1, seed=7 * index)
    model = palette_model(root / "palette.onnx")
    labels = label_set_yaml(root / "palette.yaml")
    options = ["--cloud-topic", "/lidar/points", "--model", str(model), "--label-set",
               str(labels), "--workers", "2"]  # fmt: skip
    golden = root / "golden"
    code = main(["fleet", str(root / "bags" / "*"), "--out", str(golden), *options])
    assert code == 0
    return root, golden, options, model, labels


def same_output(a, b) -> bool:
    one, two = read_output(a), read_output(b)
    if one.config != two.config or one.clouds.keys() != two.clouds.keys():
        return False
    for stamp, fields in one.clouds.items():
        if any(not np.array_equal(v, two.clouds[stamp][k]) for k, v in fields.items()):
            return False
    return all(np.array_equal(v, two.images[k]) for k, v in one.images.items())


def test_every_bag_equals_a_serial_replay_and_the_report_lists_all(suite, tmp_path):
    root, golden, _, model, labels = suite
    from seg_perception.engines import EngineConfig, create_engine
    from seg_perception.lidar.segmenter import GeometricCloudSegmenter

    engine = create_engine(EngineConfig(model=str(model), label_set=str(labels)))
    report = json.loads((golden / "fleet_report.json").read_text())
    assert sorted(r["name"] for r in report["bags"]) == [f"drive_{i:02d}" for i in range(BAGS)]
    assert report["overall"]["clouds processed"] == BAGS
    workers = {r["worker"] for r in report["bags"]}
    assert len(workers) == 2  # both workers took bags
    loads = [r["engine_load_s"] for r in report["bags"] if r["engine_load_s"] > 0]
    assert len(loads) == 2  # the model loaded once per worker, not once per bag
    for index in range(BAGS):
        name = f"drive_{index:02d}"
        serial = tmp_path / name
        config = ReplayConfig(cloud_topic="/lidar/points")
        replay(root / "bags" / name, serial, config, engine, GeometricCloudSegmenter())
        assert same_output(golden / name, serial), name


def test_a_corrupt_bag_is_reported_the_rest_complete_and_a_rerun_skips_them(suite, tmp_path):
    root, golden, options, _, _ = suite
    bags = tmp_path / "bags"
    shutil.copytree(root / "bags", bags)
    broken = bags / "drive_99"  # a bag whose storage file was cut short
    shutil.copytree(bags / "drive_00", broken)
    (storage,) = broken.glob("*.mcap")
    storage.write_bytes(storage.read_bytes()[:4000])
    shutil.copytree(golden / "drive_00", golden / "drive_99", dirs_exist_ok=True)
    code, report = fleet_and_compare([bags / "*"], golden, tmp_path, *options)
    statuses = {r["name"]: r["status"] for r in report["bags"]}
    assert code == 2, report["overall"]
    assert statuses.pop("drive_99") == "failed"
    assert set(statuses.values()) == {"ok"} and len(statuses) == BAGS
    failed = next(r for r in report["bags"] if r["name"] == "drive_99")
    assert failed["error"], failed
    assert report["overall"]["agreement with golden (cloud-weighted)"]["label"] == 1.0

    shutil.rmtree(broken)  # the rerun: only finished bags left, Ray need not even start
    start = time.perf_counter()
    code, again = fleet_and_compare([bags / "*"], golden, tmp_path, *options)
    assert code == 0
    assert all(r.get("skipped") for r in again["bags"]) and len(again["bags"]) == BAGS
    assert time.perf_counter() - start < 5.0


def test_occlusion_off_is_a_regression_in_every_bag(suite, tmp_path):
    root, golden, options, _, _ = suite
    code, report = fleet_and_compare(
        [root / "bags" / "*"], golden, tmp_path, *options, "--no-occlusion"
    )
    assert code == 1
    assert {r["status"] for r in report["bags"]} == {"regression"}
    changes = {c for r in report["bags"] for c in r["config_changes"]}
    assert any("occlusion" in c for c in changes), changes


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["{bags}/nothing_*"], "matches nothing"),
        (["{bags}/*", "--golden", "{empty}"], "has no output for 5 of 5 bag(s)"),
        (["{bags}/*", "--address", "127.0.0.1:9"], "is unreachable"),
        (["{root}"], "is not a bag"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(suite, tmp_path, capsys, arguments, expected):
    root = suite[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    values = {"bags": root / "bags", "empty": empty, "root": root}
    argv = ["fleet", *[a.format(**values) for a in arguments], "--out", str(tmp_path / "o")]
    start = time.perf_counter()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert time.perf_counter() - start < 10.0  # never a hang
