"""Fuzz suite of the live nodes (issue 9): hostile messages over real DDS, exact accounting.

Each of the four nodes (camera_segmentation twice: raw Image and CompressedImage) runs as a
process in a ROS domain of its own, with reliable inputs deep enough that every message
reaches its callback; its camera engine is ``fuzz_models.tripwire_palette_model``, which
fails at run time on chosen, well-formed images. One campaign per node, all campaigns in
parallel threads (~55 s on 2 cores):

1. **before**: every valid variant, twice: the reference outputs (and a determinism check);
2. **probe**: every hostile kind once, each followed by a valid frame. A kind that must be
   dropped must raise ``<stream> dropped`` with a WARN whose ``last problem`` names the
   problem (never a raw Python error); a legitimate oddity must be published (and
   ``check``-ed); one that is used but altered (an output field the input already had, label
   ids outside the label set) must be noted by a diagnostic; the valid frame after it must
   come out exactly as the reference (no lasting effect). A kind that kills or hangs the
   node is reported with the node's last output lines, the node restarted, and the kind
   left out of the bulk phase so that the rest can still be exercised. For the fusing
   nodes a hostile cloud that must be dropped is probed alone (its camera message would be
   dropped unmatched at once, and that problem would replace the cloud's as 'last
   problem'), and CameraInfo frames are sent CameraInfo first, waiting until it arrived:
   topics are not ordered with respect to each other and the latest CameraInfo wins;
3. **jump**: the whole stream jumps back 100 s (``ros2 bag play --loop``): outputs (labeled
   ones, for the fusing nodes) must resume within 1 s of stream time;
4. **bulk**: >= 1,000 hostile messages cycling through the kinds, one valid frame after
   every three and after every stamp attack (two bad stamps in a row that agree are a jump,
   not an outlier), paced in batches so that no queue overflows. Valid frames must come out
   as the references; those within two frames of a hostile CameraInfo need only be
   answered (which CameraInfo they meet depends on the executor's interleaving);
5. **after**: every valid variant again: outputs identical to the references.

Then the accounting of the last node process, from /diagnostics: ``<stream> received``
equals what was sent; ``<stream> dropped`` equals the sum of its ``dropped: <reason>``
counts and is at least the number of must-drop messages; received = published + dropped
for the stream each output answers; camera messages are either used by a published cloud,
dropped, or still buffered (at most ``camera_buffer``). The process must still be alive,
its peak RSS under 1 GiB (each node runs under a 6 GiB address-space limit, so a
decompression bomb cannot take the machine down) and it must shut down cleanly on SIGINT.

Failures are collected, not raised one by one: each test reports, per kind, what went
wrong, how often and up to three examples. Node logs are kept in the test's tmp folder
(``fuzz*/<node>-<n>.log``). One node alone: ``pytest test/test_fuzz_nodes.py -k
"test_fuzz_node and fusion"``. The messages and the contract they test are in
``fuzz_messages.py``.
"""

from __future__ import annotations

import itertools
import re
import resource
import signal
import subprocess
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ROS 2 Jazzy wheels)")
pytest.importorskip("seg_perception.msg", reason="messages not built: run scripts/setup.sh")
pytest.importorskip("onnxruntime", reason="needs onnxruntime")
pytest.importorskip("diagnostic_msgs", reason="needs diagnostic_msgs")
pytest.importorskip("hypothesis", reason="needs hypothesis")

import fuzz_messages as fm  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from fuzz_messages import DROP, MAY, NS, PASS, Ctx, Kind  # noqa: E402
from fuzz_models import tripwire_palette_model  # noqa: E402
from onnx_models import label_set_yaml  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import REPO, RosClient, next_domain, node_command, ros_env  # noqa: E402
from seg_perception.msg import FusionStatus  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402

STEP_NS = 50_000_000  # stamps 50 ms apart: 20 Hz, more than twice the match tolerance
TOLERANCE_S = 0.02
BULK_HOSTILE = 1000
HOSTILE_PER_VALID = 3
BATCH_FRAMES = 30  # frames between two waits for the node to catch up (queues hold 100)
JUMP_BACK_NS = 100 * NS
JUMP_FRAMES = 30  # 1.5 s of stream after the jump, paced in real time
RESUME_NS = 1 * NS  # outputs must resume within 1 s of the jumped stream
PROBE_TIMEOUT_S = 5.0
HANG_S = 15.0  # a node that takes longer than this on one batch is hung
START_TIMEOUT_S = 90.0
MAX_RESTARTS = 20
MAX_PEAK_RSS_MB = 1024
#: Address-space limit of each node process: a node that decodes a bomb fails (and is
#: reported by the RSS check) instead of taking the CI machine down (healthy: ~1.4 GB).
NODE_ADDRESS_SPACE = 6 * 2**30
CAMPAIGN_BUDGET_S = 420.0
MIN_KINDS, MIN_HOSTILE = 30, 1000
COMMON_PARAMS = {
    "diagnostics_period": 0.1,
    "input_qos": "reliable",
    "input_depth": 100,
    "output_qos": "reliable",
    "output_depth": 100,
}
FUSION_PARAMS = {
    "cameras": ["front"],
    "camera.front.extrinsics": fm.OPTICAL_IN_LIDAR,
    "camera.front.tolerance": TOLERANCE_S,
    "wait_timeout": 1.0,
    "max_pending": 10,
    "camera_buffer": 8,
}


# ------------------------------------------------------------------------- node specs
@dataclass
class Stream:
    name: str  # the kinds' stream name: image, compressed, cloud, labels, camera_info
    topic: str
    type: type
    diag: str  # the stream's name in the node's /diagnostics counts
    valid: Callable[[int, int], Any]  # (variant, stamp_ns) -> message


@dataclass
class NodeSpec:
    key: str
    module: str
    params: Callable[[dict[str, str]], dict[str, Any]]  # files -> parameters
    streams: list[Stream]  # in publishing order; the last one is answered by the outputs
    outputs: dict[str, tuple[type, str]]
    published: str  # the count of outputs, e.g. "clouds published"
    kinds: Callable[[], list[Kind]]
    fused: bool = False  # fusion / pipeline: clouds labeled from a camera

    @property
    def primary(self) -> Stream:
        return self.streams[-1]

    def stream(self, name: str) -> Stream | None:
        return next((s for s in self.streams if s.name == name), None)


def _image_stream(topic: str, diag: str) -> Stream:
    return Stream("image", topic, Image, diag, fm.valid_image)


def _cloud_stream() -> Stream:
    return Stream("cloud", "points", PointCloud2, "clouds", fm.valid_cloud)


def _info_stream() -> Stream:
    return Stream(
        "camera_info", "front/camera_info", CameraInfo, "front camera_info",
        lambda variant, stamp_ns: fm.valid_camera_info(stamp_ns),
    )  # fmt: skip


FUSED_OUTPUTS = {
    "cloud": (PointCloud2, "labeled_points"),
    "rgb": (PointCloud2, "labeled_points_rgb"),
    "status": (FusionStatus, "fusion_status"),
}


def _engine(files: dict[str, str]) -> dict[str, Any]:
    return {"engine.model": files["model"], "engine.label_set": files["labels"]}


SPECS = [
    NodeSpec(
        "camera_segmentation", "camera_segmentation",
        lambda files: {**COMMON_PARAMS, **_engine(files)},
        [_image_stream("image", "images")],
        {"labels": (Image, "labels")}, "images published",
        fm.image_kinds,
    ),
    NodeSpec(
        "camera_segmentation_compressed", "camera_segmentation",
        lambda files: {**COMMON_PARAMS, **_engine(files), "compressed": True},
        [Stream("compressed", "image/compressed", CompressedImage, "images",
                fm.valid_compressed)],
        {"labels": (Image, "labels")}, "images published",
        fm.compressed_kinds,
    ),
    NodeSpec(
        "lidar_segmentation", "lidar_segmentation",
        lambda files: dict(COMMON_PARAMS),
        [_cloud_stream()],
        {"cloud": (PointCloud2, "segmented_points")}, "clouds published",
        lambda: fm.cloud_kinds(fm.LIDAR_FIELDS),
    ),
    NodeSpec(
        "fusion", "fusion",
        lambda files: {**COMMON_PARAMS, **FUSION_PARAMS},
        [_info_stream(),
         Stream("labels", "front/labels", Image, "front labels", fm.valid_labels),
         _cloud_stream()],
        FUSED_OUTPUTS, "clouds published",
        lambda: fm.camera_info_kinds() + fm.label_kinds() + fm.cloud_kinds(fm.FUSION_FIELDS),
        fused=True,
    ),
    NodeSpec(
        "pipeline", "pipeline",
        lambda files: {**COMMON_PARAMS, **FUSION_PARAMS, **_engine(files),
                       "label_set": files["labels"]},
        [_info_stream(), _image_stream("front/image", "front images"), _cloud_stream()],
        {**FUSED_OUTPUTS, "labels": (Image, "front/labels")}, "clouds published",
        lambda: (fm.camera_info_kinds() + fm.image_kinds(hypothesis_examples=20)
                 + fm.cloud_kinds(fm.FUSION_FIELDS + fm.LIDAR_FIELDS)),
        fused=True,
    ),
]  # fmt: skip
SPEC_KEYS = [spec.key for spec in SPECS]


# ------------------------------------------------------------------------- records
@dataclass
class Frame:
    """What was published for one stamp: valid messages, or one of them hostile."""

    index: int
    instance: int
    phase: str
    stamp_ns: int
    kind: Kind | None
    variant: int
    messages: dict[str, Any]
    after: str  # the last hostile kind sent before this frame ("" if none)
    void: bool = False  # sent to a process that died before answering

    @property
    def key(self) -> tuple[int, int]:
        """The stamp the outputs of this frame carry: the answered stream's."""
        stamp = list(self.messages.values())[-1].header.stamp
        return int(stamp.sec), int(stamp.nanosec)

    @property
    def hostile_stream(self) -> str | None:
        return self.kind.stream if self.kind else None


class Abort(Exception):  # noqa: N818 - not an error of the code under test
    """The campaign cannot go on (the node does not start, time budget spent)."""


def signature(message: Any) -> tuple:
    """What must be identical between two outputs of the same input: data, not stamps."""
    if isinstance(message, Image):
        return (
            "image", message.header.frame_id, message.height, message.width,
            message.encoding, message.is_bigendian, message.step, bytes(message.data),
        )  # fmt: skip
    if isinstance(message, PointCloud2):
        fields = tuple((f.name, f.offset, f.datatype, f.count) for f in message.fields)
        return ("cloud", message.header.frame_id, message.height, message.width, fields,
                message.is_bigendian, message.point_step, message.row_step, message.is_dense,
                bytes(message.data))  # fmt: skip
    if isinstance(message, FusionStatus):
        cameras = tuple(
            (c.camera_name, c.frame_id, c.time_offset, c.points_in_view, c.points_occluded,
             c.points_labeled, c.points_won)
            for c in message.cameras
        )  # fmt: skip
        return ("status", message.header.frame_id, message.points_total,
                message.points_finite, message.points_in_range, message.points_labeled,
                message.cameras_expected, message.cameras_used, cameras,
                tuple(message.warnings))  # fmt: skip
    raise TypeError(type(message))


def parse_counts(status: DiagnosticStatus) -> dict[str, int]:
    counts = {}
    for value in status.values:
        try:
            counts[value.key] = int(value.value)
        except ValueError:
            continue
    return counts


def status_value(status: DiagnosticStatus, key: str) -> str:
    return next((v.value for v in status.values if v.key == key), "")


def words_found(text: str, groups: tuple[tuple[str, ...], ...]) -> list[tuple[str, ...]]:
    """The groups none of whose words occur in ``text``: words of up to two characters
    ("K", "D") must occur as a word, case-sensitively; longer ones anywhere, in any case."""
    missing = []
    lowered = text.lower()
    for group in groups:
        if not any(
            re.search(rf"(?<![A-Za-z_]){re.escape(w)}(?![A-Za-z_])", text)
            if len(w) <= 2
            else w.lower() in lowered
            for w in group
        ):
            missing.append(group)
    return missing


def raw_error_in(text: str) -> str | None:
    lowered = text.lower()
    return next((raw for raw in fm.RAW_ERRORS if raw in lowered), None)


# ------------------------------------------------------------------------- a campaign
class Campaign:
    """One node process (restarted after a crash), its client, and everything recorded."""

    def __init__(self, spec: NodeSpec, kinds: list[Kind], files: dict[str, str], logs: Path):
        self.spec, self.kinds, self.files, self.logs = spec, kinds, files, logs
        self.domain = next_domain()
        self.node_name = spec.module
        self.diag_name = f"seg_perception: /{self.node_name}"
        self.failures: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.notes: list[str] = []
        self.frames: list[Frame] = []
        self.statuses: list[tuple[float, DiagnosticStatus]] = []
        self.outputs: dict[str, dict[tuple[int, int], list[Any]]] = {
            name: defaultdict(list) for name in spec.outputs
        }
        self.output_times: dict[tuple[int, int], float] = {}
        self.references: dict[int, dict[str, Any]] = {}
        self.instance = 0
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.sent: Counter = Counter()
        self.baseline: dict[str, int] = {}
        self.last_valid = dict.fromkeys((s.name for s in spec.streams), 0)
        self.stamp_ns = (int(time.time()) - 600) * NS
        self.last_hostile = ""
        self.excluded: set[str] = set()
        self.hostile_sent = 0
        self.kinds_sent: set[str] = set()
        self.peak_rss_mb = 0.0
        self.timings: dict[str, float] = {}
        self.jump_start_ns: int | None = None
        self.client: RosClient | None = None
        self.publishers: dict[str, Any] = {}
        self.deadline = 0.0
        self.racy: set[int] = set()

    # ------------------------------------------------------------- reporting
    def fail(self, subject: str, problem: str, detail: str = "") -> None:
        self.failures[(subject, problem)].append(detail)

    def report(self) -> str:
        lines = [
            f"{self.spec.key}: {len(self.failures)} distinct failure(s); "
            f"{self.hostile_sent} hostile messages of {len(self.kinds_sent)} kinds sent, "
            f"{len(self.frames)} frames, {self.instance} process(es), "
            f"peak RSS {self.peak_rss_mb:.0f} MB, phases (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in self.timings.items())
        ]
        for (subject, problem), details in self.failures.items():
            count = f" (x{len(details)})" if len(details) > 1 else ""
            lines.append(f"- [{subject}] {problem}{count}")
            lines += [f"    e.g. {d}" for d in [d for d in details if d][:3]]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def tail(self, lines: int = 25) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n      ".join(["", *text[-lines:]])

    # ------------------------------------------------------------- process
    def command(self) -> list[str]:
        return node_command(self.spec.module, self.spec.params(self.files))

    def start(self) -> None:
        if self.instance > MAX_RESTARTS:
            raise Abort(f"node restarted {MAX_RESTARTS} times; giving up")
        self.instance += 1
        self.log_path = self.logs / f"{self.spec.key}-{self.instance}.log"
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                self.command(), env=ros_env(self.domain), cwd=REPO, stdout=log,
                stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        # Set from here (not preexec_fn, unsafe with threads), long before any message.
        limit = (NODE_ADDRESS_SPACE, NODE_ADDRESS_SPACE)
        resource.prlimit(self.process.pid, resource.RLIMIT_AS, limit)
        self.warm_up()

    def alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            return False
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
            peak = re.search(r"VmHWM:\s+(\d+) kB", status)
            if peak:
                self.peak_rss_mb = max(self.peak_rss_mb, int(peak.group(1)) / 1024)
        except OSError:
            pass
        return True

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def died(self, subject: str, what: str) -> None:
        """The node crashed or hung: report it with its last words, void what it never
        answered, and start a fresh process."""
        code = self.process.poll() if self.process else None
        if code is None:
            self.alive()
            self.process.kill()
            self.process.wait()
            problem = f"node hung ({what}; killed after {HANG_S:.0f} s)"
        else:
            problem = f"node died with exit code {code} ({what})"
        self.fail(subject, problem, self.tail())
        for frame in self.frames:
            if frame.instance == self.instance and not self.answered(frame):
                frame.void = True
        self.start()

    # ------------------------------------------------------------- ROS side
    def connect(self) -> None:
        self.client = RosClient(self.domain, f"fuzz_{self.spec.key}")
        node = self.client.node
        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        for stream in self.spec.streams:
            self.publishers[stream.name] = node.create_publisher(stream.type, stream.topic, qos)
        listen = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        for name, (message_type, topic) in self.spec.outputs.items():
            node.create_subscription(
                message_type, topic, lambda m, n=name: self.on_output(n, m), listen
            )
        node.create_subscription(DiagnosticArray, "/diagnostics", self.on_diagnostics, listen)

    def on_output(self, name: str, message: Any) -> None:
        key = (int(message.header.stamp.sec), int(message.header.stamp.nanosec))
        self.outputs[name][key].append(message)
        self.output_times.setdefault(key, time.monotonic())

    def on_diagnostics(self, array: DiagnosticArray) -> None:
        now = time.monotonic()
        for status in array.status:
            if status.name == self.diag_name:
                self.statuses.append((now, status))

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        return self.client.spin_until(condition, timeout)

    def counts(self) -> dict[str, int]:
        return parse_counts(self.statuses[-1][1]) if self.statuses else {}

    def delta(self, counts: dict[str, int], key: str) -> int:
        return counts.get(key, 0) - self.baseline.get(key, 0)

    def statuses_since(self, moment: float) -> list[DiagnosticStatus]:
        return [status for t, status in self.statuses if t >= moment]

    # ------------------------------------------------------------- sending
    def next_stamp(self) -> int:
        self.stamp_ns += STEP_NS
        return self.stamp_ns

    def send(
        self,
        phase: str,
        kind: Kind | None = None,
        variant: int = 0,
        omit: tuple[str, ...] = (),
        info_first: bool = False,
    ) -> Frame:
        """Publish one frame: every stream's valid message for ``variant``, the kind's
        stream hostile; ``omit``: streams left out; ``info_first``: let the CameraInfo
        land before the rest (topics are not ordered with respect to each other)."""
        stamp_ns = self.next_stamp()
        messages = {}
        for stream in self.spec.streams:
            if stream.name in omit:
                continue
            if info_first and stream.name != "camera_info":
                info_first = False
                self.spin_until(lambda: self.received_all() or not self.alive(), 2.0)
            if kind is not None and kind.stream == stream.name:
                message = kind.make(Ctx(stamp_ns, self.last_valid[stream.name]))
            else:
                message = stream.valid(variant, stamp_ns)
                self.last_valid[stream.name] = stamp_ns
            self.publishers[stream.name].publish(message)
            self.sent[stream.name] += 1
            messages[stream.name] = message
        frame = Frame(len(self.frames), self.instance, phase, stamp_ns, kind, variant, messages,
                      self.last_hostile)  # fmt: skip
        self.frames.append(frame)
        if kind is not None:
            self.last_hostile = kind.name
            self.hostile_sent += 1
            self.kinds_sent.add(kind.name)
        return frame

    # ------------------------------------------------------------- outputs of a frame
    def bundle(self, frame: Frame) -> dict[str, Any] | None:
        """The frame's outputs, one per output topic, or None while incomplete."""
        found = {}
        for name in self.spec.outputs:
            messages = self.outputs[name].get(frame.key)
            if messages:
                found[name] = messages[0]
        required = set(self.spec.outputs)
        if "labels" in required and self.spec.fused:
            status = found.get("status")
            if status is None or status.cameras_used == 0:
                required.discard("labels")  # no image was segmented for this cloud
        if not required <= set(found):
            return None
        found["input"] = frame.messages[self.spec.primary.name]
        return found

    def answered(self, frame: Frame) -> bool:
        return bool(self.outputs[next(iter(self.spec.outputs))].get(frame.key))

    def received_all(self) -> bool:
        """The latest status shows every message sent to this process received (streams
        without a ``received`` count are not waited for; the accounting reports them)."""
        counts = self.counts()
        keys = [(s.name, f"{s.diag} received") for s in self.spec.streams]
        present = [(name, key) for name, key in keys if key in counts]
        return all(self.delta(counts, key) >= self.sent[name] for name, key in present)

    def settle(self, subject: str, statuses: int = 2, timeout: float = HANG_S) -> None:
        """Wait until the node received everything, then ``statuses`` more reports."""
        if not self.spin_until(lambda: self.received_all() or not self.alive(), timeout):
            self.died(subject, f"messages sent {timeout:.0f} s ago not received")
            return
        if not self.alive():
            self.died(subject, "while receiving")
            return
        caught_up = time.monotonic()
        self.spin_until(lambda: len(self.statuses_since(caught_up)) >= statuses, 5.0)
        if time.monotonic() > self.deadline:
            raise Abort(f"time budget of {CAMPAIGN_BUDGET_S:.0f} s spent")

    def warm_up(self) -> None:
        """Connect, send valid frames until one is answered, then take the counts' baseline."""
        started = time.monotonic()
        pubs = list(self.publishers.values())
        connected = self.spin_until(
            lambda: (
                (
                    all(p.get_subscription_count() for p in pubs)
                    and all(s.get_publisher_count() for s in self.client.node.subscriptions)
                )
                or self.process.poll() is not None
            ),
            START_TIMEOUT_S,
        )
        if not connected or self.process.poll() is not None:
            raise Abort(f"node did not come up: {self.tail()}")
        for _ in range(int(START_TIMEOUT_S)):
            frame = self.send("warm-up", None, 0)
            if self.spin_until(lambda f=frame: self.bundle(f) is not None, 1.0):
                break
            if self.process.poll() is not None:
                raise Abort(f"node died while warming up: {self.tail()}")
        else:
            raise Abort(f"no output for valid input after {START_TIMEOUT_S:.0f} s")
        # Late retransmissions of frames sent during discovery arrive now: wait for quiet.
        quiet = time.monotonic()
        self.spin_until(lambda: len(self.statuses_since(quiet + 0.5)) >= 2, 10.0)
        self.baseline = self.counts()
        self.sent = Counter()
        for frame in self.frames:
            if frame.instance == self.instance:
                frame.void = True  # warm-up frames: not part of the accounting
        self.timings.setdefault("start", time.monotonic() - started)

    # ------------------------------------------------------------- phases
    def run(self) -> None:
        self.deadline = time.monotonic() + CAMPAIGN_BUDGET_S
        try:
            self.connect()
            self.start()
            for phase in (self.phase_before, self.phase_probe, self.phase_jump,
                          self.phase_bulk, self.phase_after):  # fmt: skip
                began = time.monotonic()
                phase()
                self.timings[phase.__name__.removeprefix("phase_")] = time.monotonic() - began
            self.final_checks()
        except Abort as error:
            self.fail("harness", f"campaign aborted: {error}")
        except Exception:
            self.fail("harness", "campaign raised", traceback.format_exc())
        finally:
            code = self.stop()
            if self.process is not None and code != 0:
                self.fail("shutdown", f"node did not shut down cleanly on SIGINT (exit {code})",
                          self.tail())  # fmt: skip
            if self.log_path and "Traceback" in self.log_path.read_text(errors="replace"):
                self.fail("shutdown", "a traceback in the node's output", self.tail(40))
            if self.client is not None:
                self.client.close()

    def phase_before(self) -> None:
        frames = [self.send("before", None, v) for v in range(fm.VARIANTS) for _ in range(2)]
        complete = self.spin_until(lambda: all(self.bundle(f) for f in frames), HANG_S)
        if not complete:
            missing = [f.variant for f in frames if self.bundle(f) is None]
            raise Abort(f"no reference output for valid variants {missing}: {self.tail()}")
        for first, second in zip(frames[::2], frames[1::2], strict=True):
            a, b = self.bundle(first), self.bundle(second)
            for name in self.spec.outputs:
                if name in a and signature(a[name]) != signature(b.get(name, a[name])):
                    self.fail(
                        "harness", f"valid variant {first.variant}: two identical inputs gave "
                        f"different {name} outputs (the node is not deterministic)",
                    )  # fmt: skip
            self.references[first.variant] = a
            if self.spec.fused and a["status"].cameras_used != 1:
                raise Abort(f"valid variant {first.variant} is not labeled by the camera: "
                            f"{list(a['status'].warnings)}")  # fmt: skip
        self.settle("before")

    def phase_probe(self) -> None:
        for kind in self.kinds:
            if not self.alive():
                self.died(kind.name, "before its probe")
            self.probe(kind)

    def drop_streams(self, kind: Kind) -> list[Stream]:
        names = kind.drop_streams or (kind.stream,)
        return [s for s in self.spec.streams if s.name in names]

    def probe(self, kind: Kind) -> None:
        before = self.counts()
        sent_at = time.monotonic()
        camera_data = [s.name for s in self.spec.streams[1:-1]]
        if kind.stream == "camera_info":
            # The CameraInfo is state (the latest wins), and topics are not ordered with
            # respect to each other: let this frame be fused before the next one's arrives.
            frame = self.send("probe", kind, 0, info_first=True)
            self.spin_until(lambda: self.bundle(frame) is not None, 2.0)
            follow = self.send("probe", None, 1, info_first=True)
        elif kind.stream == "cloud" and camera_data and kind.expect == DROP:
            # Only the cloud: its camera message would be dropped unmatched at once, and
            # that later problem would hide the cloud's in /diagnostics' 'last problem'.
            frame = self.send("probe", kind, 0, omit=tuple(camera_data))
            follow = self.send("probe", None, 1)
        else:
            frame = self.send("probe", kind, 0)
            follow = self.send("probe", None, 1)
        targets = self.drop_streams(kind)
        all_diag = [s.diag for s in self.spec.streams]

        def dropped(diags: list[str]) -> bool:
            counts = self.counts()
            return any(counts.get(f"{d} dropped", 0) > before.get(f"{d} dropped", 0) for d in diags)

        def settled_after_follow_up() -> bool:
            arrived = self.output_times.get(follow.key)
            return (
                arrived is not None
                and self.received_all()
                and len(self.statuses_since(arrived)) >= 2
            )

        def resolved() -> bool:
            if not self.alive():
                return True
            if kind.expect == DROP:
                done = dropped([s.diag for s in targets])
            elif kind.expect == PASS:
                done = self.bundle(frame) is not None
            else:
                done = self.bundle(frame) is not None or dropped(all_diag)
            return (done and self.bundle(follow) is not None) or settled_after_follow_up()

        self.spin_until(resolved, PROBE_TIMEOUT_S)
        if not self.alive():
            self.died(kind.name, "on its probe")
            self.excluded.add(kind.name)
            return
        if self.bundle(follow) is None:
            self.settle(kind.name, statuses=1)
            if self.instance != frame.instance:  # died or hung: already reported
                self.excluded.add(kind.name)
                return
        self.settle(kind.name, statuses=1)
        self.judge_probe(kind, frame, before, sent_at)

    def judge_probe(self, kind: Kind, frame: Frame, before: dict, sent_at: float) -> None:
        statuses = self.statuses_since(sent_at)
        for status in statuses:
            raw = raw_error_in(status_value(status, "last problem"))
            if raw:
                self.fail(kind.name, f"'last problem' is a raw Python error ({raw!r})",
                          status_value(status, "last problem"))  # fmt: skip
                break
        if kind.note:
            self.judge_note(kind, statuses, before)
        if kind.expect != DROP:
            return
        targets = self.drop_streams(kind)
        keys = [f"{s.diag} dropped" for s in targets]
        first = next(
            (
                s for s in statuses
                if any(parse_counts(s).get(k, 0) > before.get(k, 0) for k in keys)
            ),
            None,
        )  # fmt: skip
        if first is None:
            counts = self.counts()
            shown = {k: v for k, v in counts.items() if any(s.diag in k for s in targets)}
            self.fail(kind.name, f"not counted as dropped on {' or '.join(keys)}", str(shown))
            return
        problem = status_value(first, "last problem")
        if first.level != DiagnosticStatus.WARN:
            self.fail(kind.name, f"drop reported with level {first.level}, not WARN",
                      first.message)  # fmt: skip
        missing = words_found(problem, kind.words)
        if missing:
            self.fail(kind.name, f"'last problem' does not name it (none of {missing})",
                      repr(problem))  # fmt: skip

    def judge_note(self, kind: Kind, statuses: list[DiagnosticStatus], before: dict) -> None:
        """A message that is used but altered (a field replaced, ids made unlabeled) must
        say so: a count named for it went up, or a status text names it."""
        stream = self.spec.stream(kind.stream)
        if kind.expect == MAY and stream is not None:
            dropped = f"{stream.diag} dropped"
            if any(parse_counts(s).get(dropped, 0) > before.get(dropped, 0) for s in statuses):
                return  # dropped instead: that is reported already
        pattern = re.compile("|".join(re.escape(w) for w in kind.note), re.IGNORECASE)
        for status in statuses:
            counts = parse_counts(status)
            if any(pattern.search(k) and v > before.get(k, 0) for k, v in counts.items()):
                return
            texts = [status.message] + [v.value for v in status.values if v.key not in counts]
            if any(pattern.search(text) for text in texts):
                return
        self.fail(kind.name, f"no diagnostic says so (no count or text with {kind.note})")

    def phase_jump(self) -> None:
        """Every input jumps back 100 s and goes on at 20 Hz, paced in real time."""
        self.stamp_ns -= JUMP_BACK_NS
        self.jump_start_ns = self.stamp_ns + STEP_NS
        began = time.monotonic()
        for index in range(JUMP_FRAMES):
            self.send("jump", None, index % fm.VARIANTS)
            self.spin_until(lambda: False, max(0.0, began + (index + 1) * 0.05 - time.monotonic()))
        self.settle("backwards jump")

    def phase_bulk(self) -> None:
        kinds = [k for k in self.kinds if k.repeat and k.name not in self.excluded]
        if not kinds:
            raise Abort("no kind left for the bulk phase")
        for name in sorted(self.excluded):
            self.notes.append(f"left out of the bulk phase (killed or hung the node): {name}")
        hostile = 0
        cycle = itertools.cycle(kinds)
        while hostile < BULK_HOSTILE:
            for _ in range(BATCH_FRAMES):
                kind = next(cycle)
                self.send("bulk", kind, 0)
                hostile += 1
                if kind.isolated or hostile % HOSTILE_PER_VALID == 0:
                    self.send("bulk", None, (hostile // HOSTILE_PER_VALID) % fm.VARIANTS)
            instance = self.instance
            self.settle("bulk batch", statuses=1)
            if self.instance != instance:
                batch = {f.kind.name for f in self.frames[-BATCH_FRAMES * 2 :] if f.kind}
                self.excluded |= batch
                kinds = [k for k in kinds if k.name not in batch] or kinds
                cycle = itertools.cycle(kinds)

    def phase_after(self) -> None:
        frames = [self.send("after", None, v) for v in range(fm.VARIANTS)]
        self.spin_until(lambda: all(self.bundle(f) for f in frames), HANG_S)
        # Pending clouds are released by the wall-clock wait_timeout (1 s) at the latest.
        self.settle("after", statuses=2)
        waited = time.monotonic()
        self.spin_until(lambda: time.monotonic() - waited > (1.5 if self.spec.fused else 0), 3)
        self.settle("after", statuses=2)

    # ------------------------------------------------------------- judging
    def final_checks(self) -> None:
        if not self.alive():
            self.fail("end", "node not alive at the end", self.tail())
            return
        if self.peak_rss_mb > MAX_PEAK_RSS_MB:
            self.fail("memory", f"peak RSS {self.peak_rss_mb:.0f} MB > {MAX_PEAK_RSS_MB} MB "
                      "(a decompression bomb or a huge declared size was allocated)")  # fmt: skip
        self.racy = self.frames_next_to_camera_info()
        for frame in self.frames:
            if not frame.void and frame.phase != "warm-up":
                self.judge_frame(frame)
        self.check_accounting()
        if len({k.name for k in self.kinds}) < MIN_KINDS:
            self.fail("harness", f"only {len(self.kinds)} kinds (< {MIN_KINDS})")
        if self.hostile_sent < MIN_HOSTILE:
            self.fail("harness", f"only {self.hostile_sent} hostile messages (< {MIN_HOSTILE})")

    def frames_next_to_camera_info(self) -> set[int]:
        """Bulk frames next to one with a hostile CameraInfo: which CameraInfo they are fused
        with depends on how the node's executor interleaves topics, so they must only be
        answered (the probe phase checks a single bad CameraInfo's effect exactly)."""
        racy = set()
        for frame in self.frames:
            if frame.phase == "bulk" and frame.hostile_stream == "camera_info":
                racy |= set(range(frame.index - 2, frame.index + 3))
        return racy

    def frames_with_key(self, key: tuple[int, int]) -> list[Frame]:
        return [f for f in self.frames if f.key == key and not f.void]

    def judge_frame(self, frame: Frame) -> None:
        out = self.bundle(frame)
        kind = frame.kind
        if kind is None:
            self.judge_valid(frame, out)
            return
        primary = kind.stream == self.spec.primary.name
        if kind.expect == DROP and primary:
            same_key = self.frames_with_key(frame.key)
            allowed = sum(
                1 for f in same_key if not (f.kind and f.kind.expect == DROP and
                                            f.kind.stream == self.spec.primary.name)
            )  # fmt: skip
            name = next(iter(self.spec.outputs))
            published = len(self.outputs[name].get(frame.key, []))
            if published > allowed:
                self.fail(kind.name, "published although it must be dropped",
                          f"{frame.phase} frame {frame.index}")  # fmt: skip
            return
        if kind.expect == DROP and self.spec.fused and kind.stream in ("labels", "image"):
            if out is not None and out["status"].cameras_used != 0:
                self.fail(kind.name, "a dropped camera message labeled the cloud",
                          f"{frame.phase} frame {frame.index}")  # fmt: skip
            return
        if kind.expect == PASS and out is None:
            self.fail(kind.name, "no output: a legitimate message was dropped",
                      f"{frame.phase} frame {frame.index}")  # fmt: skip
            return
        if frame.index in self.racy:
            return
        if out is not None and kind.check is not None and kind.expect in (PASS, MAY):
            problem = kind.check(out, self.references[0])
            if problem:
                warnings = f": {list(out['status'].warnings)}" if "status" in out else ""
                self.fail(kind.name, f"wrong output: {problem}",
                          f"{frame.phase} frame {frame.index}{warnings}")  # fmt: skip

    def judge_valid(self, frame: Frame, out: dict[str, Any] | None) -> None:
        resuming = frame.phase == "jump" and frame.stamp_ns < (self.jump_start_ns or 0) + RESUME_NS
        subject = "valid frames after the backwards jump" if frame.phase == "jump" else (
            f"valid frames ({frame.phase})"
        )  # fmt: skip
        where = f"frame {frame.index} (stamp {frame.key}), after '{frame.after or '-'}'"
        if out is None:
            if not resuming:
                self.fail(subject, "no output for a valid frame", where)
            return
        if resuming or frame.index in self.racy:
            return
        if self.spec.fused and out["status"].cameras_used != 1:
            self.fail(subject, "a valid frame was not labeled by its camera",
                      f"{where}: {list(out['status'].warnings)}")  # fmt: skip
            return
        reference = self.references[frame.variant]
        for name in self.spec.outputs:
            differs = name in reference and name in out
            if differs and signature(out[name]) != signature(reference[name]):
                self.fail(subject, f"{name} output differs from the reference output of the "
                          "same valid input", where)  # fmt: skip

    def check_accounting(self) -> None:
        """The counts of the last process against what it was sent (see module docs)."""
        counts = self.counts()
        frames = [f for f in self.frames if f.instance == self.instance and not f.void]
        published_key = self.spec.published
        summary = {k: self.delta(counts, k) for k in counts if self.delta(counts, k)}
        self.notes.append(f"counts of the last process since its baseline: {summary}")
        for stream in self.spec.streams:
            diag = stream.diag
            received_key, dropped_key = f"{diag} received", f"{diag} dropped"
            if received_key not in counts:
                self.fail("accounting", f"no '{received_key}' count", str(summary))
            elif self.delta(counts, received_key) != self.sent[stream.name]:
                self.fail("accounting", f"'{received_key}' is {self.delta(counts, received_key)}"
                          f" but {self.sent[stream.name]} were sent (reliable QoS)")  # fmt: skip
            reasons = {
                k: v for k, v in counts.items()
                if k.startswith(f"{dropped_key}: ") and self.delta(counts, k)
            }  # fmt: skip
            dropped = self.delta(counts, dropped_key)
            reason_sum = sum(self.delta(counts, k) for k in reasons)
            if dropped != reason_sum:
                self.fail("accounting", f"'{dropped_key}' is {dropped} but its reasons add up "
                          f"to {reason_sum}", str(reasons))  # fmt: skip
            must = sum(
                1 for f in frames if f.kind and f.kind.expect == DROP
                and f.kind.stream == stream.name and not f.kind.drop_streams
            )  # fmt: skip
            if dropped < must:
                self.fail("accounting", f"'{dropped_key}' is {dropped} but {must} messages on "
                          "it had to be dropped", str(reasons))  # fmt: skip
            if stream is self.spec.primary:
                published = self.delta(counts, published_key)
                received = self.delta(counts, received_key)
                if received != published + dropped:
                    self.fail("accounting", f"{received_key} ({received}) != {published_key} "
                              f"({published}) + {dropped_key} ({dropped}): messages lost "
                              "without a count", str(summary))  # fmt: skip
            elif self.spec.fused and stream.name != "camera_info":
                used = sum(
                    1 for f in frames
                    if (out := self.bundle(f)) is not None and out["status"].cameras_used
                )  # fmt: skip
                received = self.delta(counts, received_key)
                buffered = FUSION_PARAMS["camera_buffer"]
                if received > used + dropped + buffered:
                    self.fail("accounting", f"{received_key} ({received}) > used by published "
                              f"clouds ({used}) + {dropped_key} ({dropped}) + at most "
                              f"{buffered} still buffered: camera messages vanish uncounted",
                              str(summary))  # fmt: skip
        # Kinds whose drop may land on another stream (a CameraInfo that does not fit the
        # images) are exact only in the probe: in the bulk, which CameraInfo an image meets
        # depends on how the executor interleaves topics.
        must_any = [f for f in frames if f.kind and f.kind.expect == DROP and f.kind.drop_streams
                    and f.phase == "probe"]  # fmt: skip
        if must_any:
            streams = {s.diag for s in self.spec.streams}
            total = sum(self.delta(counts, f"{d} dropped") for d in streams)
            must_all = sum(
                1 for f in frames if f.kind and f.kind.expect == DROP
                and (f.phase == "probe" or not f.kind.drop_streams)
            )  # fmt: skip
            if total < must_all:
                self.fail("accounting", f"{total} drops counted over all streams but "
                          f"{must_all} messages had to be dropped", str(summary))  # fmt: skip


# ------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def campaigns(request, tmp_path_factory):
    """Run the campaigns of the selected nodes in parallel; the tests read the results."""
    folder = tmp_path_factory.mktemp("fuzz")
    files = {
        "model": str(tripwire_palette_model(folder / "tripwire.onnx")),
        "labels": str(label_set_yaml(folder / "palette.yaml")),
    }
    selected = {
        item.callspec.params["key"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_fuzz_node" and hasattr(item, "callspec")
    } or set(SPEC_KEYS)
    runs = {
        spec.key: Campaign(spec, spec.kinds(), files, folder)  # kinds: drawn in this thread
        for spec in SPECS
        if spec.key in selected
    }
    began = time.monotonic()
    with ThreadPoolExecutor(len(runs)) as pool:
        for future in [pool.submit(run.run) for run in runs.values()]:
            future.result()
    elapsed = time.monotonic() - began
    for run in runs.values():
        run.timings["all campaigns"] = elapsed
        print(run.report())
    return runs


@pytest.mark.parametrize("key", SPEC_KEYS)
def test_fuzz_node(campaigns, key):
    campaign = campaigns[key]
    assert not campaign.failures, campaign.report()


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_KEYS)
def test_fuzz_kinds_cover_the_issue(spec):
    """At least 30 distinct hostile kinds per node, names unique, every DROP kind names
    what its WARN must mention, and the kinds the issue lists are all there."""
    kinds = spec.kinds()
    names = [k.name for k in kinds]
    assert len(set(names)) == len(names), [n for n in names if names.count(n) > 1]
    assert len(names) >= MIN_KINDS, len(names)
    streams = {s.name for s in spec.streams}
    assert {k.stream for k in kinds} <= streams
    assert all(k.words or k.drop_streams for k in kinds if k.expect == DROP), [
        k.name for k in kinds if k.expect == DROP and not (k.words or k.drop_streams)
    ]
    text = " | ".join(names)
    for required in ("2^31-1", "duplicate stamp", "out of order"):
        assert required in text, required
    if "cloud" in streams:
        for required in ("point_step 2^32-1", "width*height", "row_step", "already has"):
            assert required in text, required
    if spec.fused and "labels" in streams:
        assert "outside the label set" in text
    if streams & {"image", "compressed"}:
        assert "engine fails at run time" in text


def test_hostile_generators_are_deterministic():
    """Two builds of the kinds give byte-identical messages (hypothesis is derandomized)."""

    def build() -> list[Any]:
        ctx = Ctx(1_700_000_000 * NS, 1_700_000_000 * NS - STEP_NS)
        kinds = fm.cloud_kinds(fm.LIDAR_FIELDS) + fm.image_kinds() + fm.label_kinds()
        return [k.make(ctx) for k in kinds for _ in range(3)]

    first, second = build(), build()
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a == b, (a.header, b.header)


def test_generators_produce_what_their_kind_says():
    """Sanity of the harness itself: valid messages convert, malformed ones do not."""
    from seg_perception.ros.pointcloud2 import pointcloud2_to_array

    ctx = Ctx(1_700_000_000 * NS, 1_700_000_000 * NS - STEP_NS)
    for variant in range(fm.VARIANTS):
        assert pointcloud2_to_array(fm.valid_cloud(variant, ctx.stamp_ns)).size > 500
    for kind in fm.cloud_kinds(fm.FUSION_FIELDS + fm.LIDAR_FIELDS):
        if "layout" in kind.name:
            for _ in range(20):
                message = kind.make(ctx)
                if kind.expect == PASS:
                    cloud = pointcloud2_to_array(message)
                    np.testing.assert_array_equal(cloud["x"], fm.cloud_points(0)["x"])
                    continue
                try:
                    names = pointcloud2_to_array(message).dtype.names
                except Exception:
                    continue  # rejected: as it must be
                assert not {"x", "y", "z"} <= set(names), (kind.name, message.fields)
    assert {k.expect for k in fm.image_kinds()} == {DROP, PASS, MAY}
