"""Bad inputs and bad configurations given to the live nodes, over real Fast DDS.

The camera segmentation, LiDAR segmentation and fusion nodes run as processes (one of
each, shared by every check of this module). Each check sends one bad message, waits for
a WARN on ``/diagnostics`` from that node naming the problem, then sends a good message
and waits for its output: the node must keep serving, and its status must return to OK.
Configuration errors must end a node at start-up with exit code 2 and one clear message,
never a traceback. The messages are synthetic (no shared data needed): a palette picture
the palette ONNX model labels exactly, and a ground plane with a box in front of it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")
pytest.importorskip("onnxruntime", reason="needs onnxruntime")
pytest.importorskip("diagnostic_msgs", reason="needs diagnostic_msgs")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from onnx_models import label_set_yaml, palette_model, palette_picture  # noqa: E402
from ros_helpers import (  # noqa: E402
    RosClient,
    diagnostic_statuses,
    diagnostic_text,
    next_domain,
    node_command,
    output_of,
    run_to_exit,
    running_nodes,
)
from seg_perception.msg import FusionStatus  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField  # noqa: E402

from seg_perception.engines import EngineConfig, create_engine  # noqa: E402
from seg_perception.ros.image_conversions import array_to_image, image_to_array  # noqa: E402
from seg_perception.ros.pointcloud2 import (  # noqa: E402
    array_to_pointcloud2,
    pointcloud2_to_array,
)

CAMERA, LIDAR, FUSION = "camera_segmentation", "lidar_segmentation", "fusion"
#: Camera optical frame (z forward, x right, y down) in the LiDAR frame (x forward, z up).
OPTICAL_IN_LIDAR = [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5]
HEIGHT, WIDTH = 48, 96  # region borders of the palette picture on multiples of 4
CAR = 13  # cityscapes train id the fusion node's good label images carry
WAIT = 15.0  # seconds for one expected reaction (generous: 2 cores, loaded CI)

_stamps = itertools.count(1000)


def next_stamp() -> Time:
    return Time(sec=next(_stamps), nanosec=0)


# ------------------------------------------------------------------------- messages
def header(message: Any, stamp: Time, frame_id: str) -> Any:
    message.header.stamp = stamp
    message.header.frame_id = frame_id
    return message


def good_image(stamp: Time) -> Image:
    picture, _ = palette_picture(HEIGHT, WIDTH)
    return header(array_to_image(picture, "rgb8"), stamp, "camera")


def good_cloud(stamp: Time) -> PointCloud2:
    """A ground plane 1.73 m below the sensor and a 2 m wide box 8 m ahead."""
    xs, ys = np.meshgrid(np.arange(2, 20, 0.25), np.arange(-5, 5, 0.25))
    ground = np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, -1.73)])
    bys, bzs = np.meshgrid(np.arange(-1, 1, 0.1), np.arange(-1.6, 0, 0.1))
    box = np.column_stack([np.full(bys.size, 8.0), bys.ravel(), bzs.ravel()])
    xyz = np.vstack([ground, box]).astype(np.float32)
    points = np.zeros(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("i", "f4")])
    points["x"], points["y"], points["z"] = xyz.T
    points["i"] = 1.0
    return header(array_to_pointcloud2(points), stamp, "lidar")


def good_labels(stamp: Time) -> Image:
    labels = np.full((HEIGHT, WIDTH), CAR, dtype=np.uint8)
    return header(array_to_image(labels, "mono8"), stamp, "camera")


def camera_info(zeros: bool = False) -> CameraInfo:
    """A 96x48 pinhole camera; ``zeros``: all-zero K and P, as uncalibrated drivers send."""
    f, cx, cy = (0.0, 0.0, 0.0) if zeros else (50.0, WIDTH / 2, HEIGHT / 2)
    info = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model="plumb_bob")
    info.d = [0.0] * 5
    info.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0 if not zeros else 0.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0 if not zeros else 0.0, 0.0]
    return header(info, Time(), "camera")


def truncated(message: Any, nbytes: int = 5) -> Any:
    """The message with ``nbytes`` of its data cut off: the sizes no longer add up."""
    message.data = bytes(message.data)[:-nbytes]
    return message


def image_with_encoding(stamp: Time, encoding: str) -> Image:
    """An image whose bytes are consistent with ``encoding`` but not convertible to RGB."""
    channels = {"yuv422": 2, "bayer_rggb8": 1, "rgb8": 3, "mono8": 1}.get(encoding, 1)
    message = Image(height=HEIGHT, width=WIDTH, encoding=encoding, step=WIDTH * channels)
    message.data = bytes(HEIGHT * WIDTH * channels)
    return header(message, stamp, "camera")


def cloud_without_xyz(stamp: Time) -> PointCloud2:
    fields = [
        PointField(name="intensity", offset=0, datatype=PointField.FLOAT32, count=1),
        PointField(name="ring", offset=4, datatype=PointField.UINT16, count=1),
    ]
    message = PointCloud2(height=1, width=100, fields=fields, point_step=8, row_step=800)
    message.data = bytes(800)
    return header(message, stamp, "lidar")


def cloud_with_short_point_step(stamp: Time) -> PointCloud2:
    """x, y, z, i fields (16 bytes) declared with point_step 12, data sized to match."""
    message = good_cloud(stamp)
    message.point_step, message.row_step = 12, 12 * message.width
    message.data = bytes(message.data)[: message.row_step]
    return message


def stamp_of(message: Any) -> tuple[int, int]:
    return message.header.stamp.sec, message.header.stamp.nanosec


# ------------------------------------------------------------------------- the graph
@dataclass
class Graph:
    """The three node processes, the test's client and what it has received."""

    client: RosClient
    processes: dict[str, Any]
    diagnostics: list[DiagnosticArray]
    pubs: dict[str, Any] = field(default_factory=dict)
    out: dict[str, list[Any]] = field(default_factory=dict)
    expected_labels: np.ndarray | None = None  # the palette picture through the same engine

    def alive(self, node: str) -> None:
        process = self.processes[node]
        if process.poll() is not None:
            pytest.fail(f"{node} died (exit {process.returncode}):\n{output_of(process)}")

    def statuses(self, node: str, start: int = 0) -> list[DiagnosticStatus]:
        return diagnostic_statuses(self.diagnostics[start:], node)

    def expect_warning(
        self, node: str, words: list[str], send: Callable[[Time], None]
    ) -> DiagnosticStatus:
        """Send a bad input (again each second, fresh stamp) until a WARN names ``words``."""
        start = len(self.diagnostics)

        def found() -> DiagnosticStatus | None:
            for status in self.statuses(node, start):
                text = diagnostic_text(status)
                if status.level == DiagnosticStatus.WARN and all(w in text for w in words):
                    return status
            return None

        for _ in range(int(WAIT)):
            send(next_stamp())
            if self.client.spin_until(lambda: found() is not None, 1.0):
                break
            self.alive(node)
        self.alive(node)
        status = found()
        seen = [diagnostic_text(s) for s in self.statuses(node, start)]
        assert status is not None, f"no WARN from {node} naming {words}; saw: {seen}"
        return status

    def expect_output(
        self,
        node: str,
        topic: str,
        send: Callable[[Time], None],
        accept: Callable[[Any], bool] = lambda message: True,
    ) -> Any:
        """Send a good input until an accepted output with its stamp arrives; status OK again."""
        sent: set[tuple[int, int]] = set()
        received = self.out[topic]

        def match() -> Any:
            return next((m for m in received if stamp_of(m) in sent and accept(m)), None)

        for _ in range(int(WAIT)):
            stamp = next_stamp()
            sent.add((stamp.sec, stamp.nanosec))
            send(stamp)
            if self.client.spin_until(lambda: match() is not None, 1.0):
                break
            self.alive(node)
        message = match()
        assert message is not None, f"{node}: no accepted output on {topic} for {sorted(sent)}"
        # A report period without problems puts the status back to OK.
        start = len(self.diagnostics)
        ok = self.client.spin_until(
            lambda: any(s.level == DiagnosticStatus.OK for s in self.statuses(node, start)),
            WAIT,
        )
        assert ok, f"{node} did not return to OK: {self.statuses(node, start)[-1:]}"
        self.alive(node)
        return message


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_input")
    model = str(palette_model(folder / "palette.onnx"))
    labels = str(label_set_yaml(folder / "palette.yaml"))
    common = {"diagnostics_period": 0.2, "input_qos": "reliable", "input_depth": 5}
    commands = {
        CAMERA: node_command(
            CAMERA,
            {**common, "engine.model": model, "engine.label_set": labels},
            {"image": "/cam/image", "labels": "/cam/labels"},
        ),
        LIDAR: node_command(
            LIDAR, common, {"points": "/lidar/points", "segmented_points": "/lidar/segmented"}
        ),
        FUSION: node_command(
            FUSION,
            {**common, "cameras": ["front"], "camera.front.extrinsics": OPTICAL_IN_LIDAR},
            {"points": "/fusion/points"},
        ),
    }
    domain = next_domain()
    with running_nodes(list(commands.values()), domain) as processes:
        client = RosClient(domain, "bad_input_tester")
        try:
            graph = Graph(client, dict(zip(commands, processes, strict=True)), [])
            engine = create_engine(
                EngineConfig(model=model, input_size=None, resize="none", label_set=labels)
            )
            graph.expected_labels = engine.segment(palette_picture(HEIGHT, WIDTH)[0]).labels
            graph.diagnostics = client.collect(DiagnosticArray, "/diagnostics", depth=100)
            for topic, kind in (
                ("/cam/image", Image),
                ("/lidar/points", PointCloud2),
                ("/fusion/points", PointCloud2),
                ("/front/labels", Image),
                ("/front/camera_info", CameraInfo),
            ):
                graph.pubs[topic] = client.publisher(kind, topic)
            for topic, kind in (
                ("/cam/labels", Image),
                ("/lidar/segmented", PointCloud2),
                ("/labeled_points", PointCloud2),
                ("/fusion_status", FusionStatus),
            ):
                graph.out[topic] = client.collect(kind, topic)
            subscriptions = client.node.subscriptions
            connected = client.spin_until(
                lambda: (
                    all(p.get_subscription_count() for p in graph.pubs.values())
                    and all(s.get_publisher_count() for s in subscriptions)
                ),
                60,
            )
            if not connected:
                pytest.fail(
                    "nodes did not come up:\n"
                    + "\n".join(output_of(p) for p in processes if p.poll() is not None)
                )
            # Discovery is not symmetric: serve good data until each node has answered once.
            graph.expect_output(CAMERA, "/cam/labels", send_image(graph, good_image))
            graph.expect_output(LIDAR, "/lidar/segmented", send_cloud(graph, good_cloud))
            graph.expect_output(FUSION, "/fusion_status", send_fusion(graph), cameras_used(1))
            yield graph
        finally:
            client.close()
        for process in processes:
            process.send_signal(2)
        codes = {node: p.wait(timeout=20) for node, p in zip(commands, processes, strict=True)}
        if any(codes.values()):
            outputs = "\n".join(output_of(p) for p in processes)
            pytest.fail(f"nodes did not shut down cleanly: {codes}\n{outputs}")


def send_image(graph: Graph, make: Callable[[Time], Image]) -> Callable[[Time], None]:
    return lambda stamp: graph.pubs["/cam/image"].publish(make(stamp))


def send_cloud(graph: Graph, make: Callable[[Time], PointCloud2]) -> Callable[[Time], None]:
    return lambda stamp: graph.pubs["/lidar/points"].publish(make(stamp))


def send_fusion(
    graph: Graph,
    labels: Callable[[Time], Image] = good_labels,
    cloud: Callable[[Time], PointCloud2] = good_cloud,
    info: CameraInfo | None = None,
) -> Callable[[Time], None]:
    """CameraInfo first (and a moment for it to land), then a label image and a cloud."""

    def send(stamp: Time) -> None:
        graph.pubs["/front/camera_info"].publish(info or camera_info())
        graph.client.spin_for(0.1)
        graph.pubs["/front/labels"].publish(labels(stamp))
        graph.pubs["/fusion/points"].publish(cloud(stamp))

    return send


def cameras_used(count: int) -> Callable[[FusionStatus], bool]:
    return lambda status: status.cameras_used == count


# ------------------------------------------------------------------------- camera node
BAD_IMAGES = {
    "malformed": (lambda s: truncated(good_image(s)), ["height * step"]),
    "yuv422": (lambda s: image_with_encoding(s, "yuv422"), ["'yuv422'"]),
    "bayer": (lambda s: image_with_encoding(s, "bayer_rggb8"), ["'bayer_rggb8'"]),
    "unknown encoding": (lambda s: image_with_encoding(s, "nv12"), ["unknown image encoding"]),
    "empty": (lambda s: header(Image(encoding="rgb8"), s, "camera"), ["empty"]),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_camera_node_reports_a_bad_image_and_keeps_serving(graph, case):
    make, words = BAD_IMAGES[case]
    status = graph.expect_warning(CAMERA, words, send_image(graph, make))
    assert "dropped image" in status.message
    labels = graph.expect_output(CAMERA, "/cam/labels", send_image(graph, good_image))
    np.testing.assert_array_equal(image_to_array(labels), graph.expected_labels)


# ------------------------------------------------------------------------- lidar node
BAD_CLOUDS = {
    "data shorter than row_step * height": (
        lambda s: truncated(good_cloud(s)),
        ["PointCloud2 data has"],
    ),
    "fields beyond point_step": (cloud_with_short_point_step, ["point_step"]),
    "no x/y/z fields": (cloud_without_xyz, ["no x, y, z"]),
}


def lidar_classes_found(message: PointCloud2) -> bool:
    cloud = pointcloud2_to_array(message)
    return "lidar_class" in cloud.dtype.names and {1, 2} <= set(np.unique(cloud["lidar_class"]))


@pytest.mark.parametrize("case", list(BAD_CLOUDS))
def test_lidar_node_reports_a_bad_cloud_and_keeps_serving(graph, case):
    make, words = BAD_CLOUDS[case]
    status = graph.expect_warning(LIDAR, words, send_cloud(graph, make))
    assert "dropped cloud" in status.message
    graph.expect_output(
        LIDAR, "/lidar/segmented", send_cloud(graph, good_cloud), lidar_classes_found
    )


# ------------------------------------------------------------------------- fusion node
def test_fusion_node_reports_a_bad_cloud_and_keeps_serving(graph):
    for make, words in BAD_CLOUDS.values():
        status = graph.expect_warning(FUSION, words, send_fusion(graph, cloud=make))
        assert "dropped cloud" in status.message
        graph.expect_output(FUSION, "/fusion_status", send_fusion(graph), cameras_used(1))


BAD_LABELS = {
    "rgb8 label image": (lambda s: image_with_encoding(s, "rgb8"), ["rgb8", "mono8"]),
    "malformed label image": (lambda s: truncated(good_labels(s)), ["height * step"]),
}


@pytest.mark.parametrize("case", list(BAD_LABELS))
def test_fusion_node_skips_a_camera_with_a_bad_label_image(graph, case):
    make, words = BAD_LABELS[case]
    start = len(graph.out["/fusion_status"])
    # The label image is refused on arrival, counted under its camera's stream ...
    status = graph.expect_warning(
        FUSION, ["dropped front labels", *words], send_fusion(graph, make)
    )
    assert "front labels dropped: " in diagnostic_text(status)  # counted by its reason

    # ... and the cloud is still published, unlabeled, its status saying why.
    def skipped() -> list[Any]:
        return [
            s
            for s in graph.out["/fusion_status"][start:]
            if s.cameras_used == 0
            and any(
                "camera 'front' skipped" in x and all(w in x for w in words) for x in s.warnings
            )
        ]

    graph.client.spin_until(lambda: bool(skipped()), WAIT)
    assert skipped(), [list(s.warnings) for s in graph.out["/fusion_status"][start:]]
    skipped = skipped()
    assert skipped[0].cameras_expected == 1
    good = graph.expect_output(FUSION, "/fusion_status", send_fusion(graph), cameras_used(1))
    assert good.cameras[0].points_labeled > 100 and list(good.warnings) == []


def test_fusion_node_skips_a_camera_with_an_all_zero_camera_info(graph):
    start = len(graph.out["/fusion_status"])
    words = ["camera 'front'", "CameraInfo", "uncalibrated"]
    graph.expect_warning(FUSION, words, send_fusion(graph, info=camera_info(zeros=True)))
    spin_more = graph.client.spin_until(
        lambda: any(s.cameras_used == 0 for s in graph.out["/fusion_status"][start:]), WAIT
    )
    assert spin_more, "no fusion_status for the clouds sent with the bad CameraInfo"
    skipped = [s for s in graph.out["/fusion_status"][start:] if s.cameras_used == 0]
    assert any("CameraInfo" in w for w in skipped[0].warnings), list(skipped[0].warnings)
    labeled = graph.expect_output(FUSION, "/labeled_points", send_fusion(graph, info=camera_info()))
    graph.expect_output(FUSION, "/fusion_status", send_fusion(graph), cameras_used(1))
    assert labeled.header.frame_id == "lidar"


#: The problem named by camera and calibrated size (the wording may change, these may not).
WRONG_SIZE_WORDS = ["camera 'front'", f"{WIDTH}x{HEIGHT}"]


def small_labels(stamp: Time) -> Image:
    """A label image at another resolution than its CameraInfo (e.g. the network's)."""
    return header(array_to_image(np.full((12, 24), CAR, np.uint8), "mono8"), stamp, "camera")


def test_fusion_node_reports_a_label_image_of_the_wrong_size_and_keeps_serving(graph):
    graph.expect_warning(FUSION, WRONG_SIZE_WORDS, send_fusion(graph, small_labels))
    graph.expect_output(FUSION, "/fusion_status", send_fusion(graph), cameras_used(1))


def test_fusion_node_skips_a_camera_whose_label_image_has_the_wrong_size(graph):
    start = len(graph.out["/fusion_status"])
    graph.expect_warning(FUSION, WRONG_SIZE_WORDS, send_fusion(graph, small_labels))
    published = graph.client.spin_until(
        lambda: any(s.cameras_used == 0 for s in graph.out["/fusion_status"][start:]), 3.0
    )
    assert published, "the cloud was dropped with the camera"
    graph.expect_output(FUSION, "/fusion_status", send_fusion(graph), cameras_used(1))


def test_fusion_node_labels_the_points_of_a_good_frame(graph):
    """What the checks above rely on: good frames are labeled by the camera."""
    message = graph.expect_output(FUSION, "/labeled_points", send_fusion(graph))
    cloud = pointcloud2_to_array(message)
    assert {"x", "y", "z", "i", "label", "confidence", "camera"} <= set(cloud.dtype.names)
    assert np.count_nonzero(cloud["label"] == CAR) > 100
    assert set(np.unique(cloud["label"])) <= {CAR, 255}


# ------------------------------------------------------------------------- start-up
STARTUP_CASES = {
    "unknown parameter": (
        LIDAR, {"ground.sensor_hieght": 1.5}, ["unknown parameter", "ground.sensor_hieght"]
    ),
    "out of range": (LIDAR, {"input_depth": 0}, ["input_depth", "out of its range", "[1, 100]"]),
    "wrong type": (LIDAR, {"ground.sensor_height": "high"}, ["ground.sensor_height", "float"]),
    "not one of the choices": (LIDAR, {"input_qos": "fast"}, ["input_qos", "sensor_data"]),
    "camera without a model": (CAMERA, {}, ["engine.model is empty"]),
    "camera model file missing": (
        CAMERA, {"engine.model": "/nonexistent/model.onnx"}, ["/nonexistent/model.onnx"]
    ),
    "pipeline parameter out of range": (
        "pipeline",
        {"engine.model": "x.onnx", "fusion.occlusion_rows": 65},
        ["fusion.occlusion_rows", "out of its range"],
    ),
    "second camera without extrinsics": (
        FUSION,
        {"cameras": ["front", "left"], "camera.front.extrinsics": OPTICAL_IN_LIDAR},
        ["'left'", "tf2_ros", "camera.<name>.extrinsics"],
    ),
    "extrinsics of the wrong length": (
        FUSION, {"camera.front.extrinsics": [1.0, 2.0]}, ["camera.front.extrinsics", "7 numbers"]
    ),
    "camera parameter of the wrong type": (
        FUSION,
        {"camera.front.extrinsics": OPTICAL_IN_LIDAR, "camera.front.tolerance": "wide"},
        ["camera.front.tolerance", "float"],
    ),
    "integer extrinsics": (
        FUSION,
        {"camera.front.extrinsics": [0, 0, 0, 0, 0, 0, 1]},
        ["camera.front.extrinsics"],
    ),
    "fixed frame without TF": (
        FUSION,
        {"camera.front.extrinsics": OPTICAL_IN_LIDAR, "fixed_frame": "odom"},
        ["fixed_frame 'odom' needs TF", "tf2_ros is not installed"],
    ),
    "unknown transport": (
        FUSION,
        {"camera.front.extrinsics": OPTICAL_IN_LIDAR, "camera.front.transport": "h264"},
        ["camera.front.transport", "raw, compressed"],
    ),
    "unknown projection": (
        FUSION,
        {"camera.front.extrinsics": OPTICAL_IN_LIDAR, "camera.front.projection": "fisheye"},
        ["camera.front.projection", "auto, raw, rectified"],
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def startup_runs():
    """Every start-up case at once, in parallel: (exit code, output) by case."""
    commands = [node_command(module, params) for module, params, _ in STARTUP_CASES.values()]
    results = run_to_exit(commands, next_domain(), timeout=90)
    return dict(zip(STARTUP_CASES, results, strict=True))


@pytest.mark.parametrize("case", list(STARTUP_CASES))
def test_startup_error_ends_the_node_with_a_clear_message(startup_runs, case):
    words = STARTUP_CASES[case][2]
    code, output = startup_runs[case]
    assert "Traceback" not in output, output
    assert code == 2, output
    fatal = [line for line in output.splitlines() if "cannot start" in line]
    assert len(fatal) == 1, output
    for word in words:
        assert word in fatal[0], (word, fatal[0])
