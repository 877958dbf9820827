"""Any model's contract from a live node, by parameters or its sidecar alone, over DDS.

Three camera segmentation nodes, each with a hand-built ONNX whose right answer is known
per pixel only when it is fed and read per its contract (test/onnx_models.py):

* a class-id output model, with ``engine.output_kind:=class_ids``;
* a probabilities output model, with ``engine.output_kind:=probabilities``;
* a BGR CNN with its own mean/std and a 20th, void channel, described only by the sidecar
  YAML beside it: void pixels must come out unlabeled (255), the ClassMap has 19 classes.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")
pytest.importorskip("onnxruntime", reason="needs onnxruntime")

from builtin_interfaces.msg import Time  # noqa: E402
from onnx_models import PALETTE, contract_model  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import RosClient, next_domain, node_command, output_of, running_nodes  # noqa: E402
from seg_perception.msg import ClassMap  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from test_model_spec import BGR_MEAN, BGR_STD, COLORS, bgr_picture  # noqa: E402

from seg_perception.ros.image_conversions import array_to_image, image_to_array  # noqa: E402


def test_three_contracts_from_live_nodes(tmp_path):
    ids = contract_model(tmp_path / "ids.onnx", PALETTE, kind="class_ids")
    probabilities = contract_model(tmp_path / "prob.onnx", PALETTE, kind="probabilities")
    unused = np.column_stack([np.full(15, 200), np.zeros(15), 120 + 8 * np.arange(15)])
    bgr = contract_model(
        tmp_path / "bgr.onnx", np.vstack([COLORS[:4], unused, COLORS[4:]]),
        bgr=True, mean=BGR_MEAN, std=BGR_STD,
    )  # fmt: skip
    (tmp_path / "bgr.yaml").write_text(
        yaml.safe_dump(
            {
                "input": {"color": "bgr", "scale": 1 / 255, "mean": list(BGR_MEAN),
                          "std": list(BGR_STD)},
                "classes": "cityscapes",
                "void": [19],
            }
        )
    )  # fmt: skip
    cases = {
        "ids": {"engine.model": str(ids), "engine.output_kind": "class_ids"},
        "prob": {"engine.model": str(probabilities), "engine.output_kind": "probabilities"},
        "bgr": {"engine.model": str(bgr)},
    }
    commands = [
        node_command(
            "camera_segmentation", params,
            {"__node": f"{name}_segmentation", "image": f"/{name}/image",
             "labels": f"/{name}/labels", "class_map": f"/{name}/class_map"},
        )
        for name, params in cases.items()
    ]  # fmt: skip
    picture, truth = bgr_picture()
    domain = next_domain()
    with running_nodes(commands, domain) as processes:
        client = RosClient(domain, "contract_tester")
        try:
            pubs = {n: client.publisher(Image, f"/{n}/image") for n in cases}
            out = {n: client.collect(Image, f"/{n}/labels") for n in cases}
            maps: list[ClassMap] = []  # latched: published before we subscribed
            latched = QoSProfile(
                depth=1,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
            client.node.create_subscription(ClassMap, "/bgr/class_map", maps.append, latched)
            up = client.spin_until(
                lambda: all(p.get_subscription_count() for p in pubs.values()), 60
            )
            assert up, "\n".join(output_of(p) for p in processes)
            for k in range(20):
                message = array_to_image(picture, "rgb8")
                message.header.stamp = Time(sec=10 + k)
                for publisher in pubs.values():
                    publisher.publish(message)
                if client.spin_until(lambda: all(out.values()) and maps, 1.0):
                    break
            for process in processes:
                assert process.poll() is None, output_of(process)
        finally:
            client.close()
    # The 4-color models have no void channel: their black band gets some palette class.
    for name in ("ids", "prob"):
        assert out[name], f"{name}: no labels"
        got = image_to_array(out[name][-1])
        black = truth == 255
        np.testing.assert_array_equal(got[~black], truth[~black], err_msg=name)
    got = image_to_array(out["bgr"][-1])
    np.testing.assert_array_equal(got, truth)  # the void band is 255, the rest exact
    assert len(maps[-1].classes) == 19 and maps[-1].unlabeled_id == 255
