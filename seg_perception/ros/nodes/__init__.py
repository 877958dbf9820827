"""The ROS 2 nodes. Importing this package limits BLAS to one thread (unless set already)
and starts recording stop signals.

The nodes' BLAS calls are tiny (3x3 by 3xN products) and gain nothing from threads, while
OpenBLAS' spinning worker threads cost about 90 ms of CPU per frame on a 2-core machine
(measured with bench/bench_ros_latency.py); with both cores saturated the single-process
node fell behind at 10 Hz and dropped frames. It must happen before numpy is imported,
which the node modules below do.

A SIGINT or SIGTERM that arrives while the node's modules are still importing (numpy,
OpenCV, rclpy: a few tenths of a second) would otherwise raise ``KeyboardInterrupt`` with a
traceback, or kill the process. It is recorded here instead, and ``run_node`` honours it as
soon as it takes signal handling over (see ``node_base.StopSignals``).
"""

import os
import signal
import threading

# Only numpy's BLAS: ONNX Runtime and PyTorch keep their own thread settings
# (engine.num_threads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

#: Stop signals received before run_node installed its handlers, in order.
EARLY_SIGNALS: list[int] = []


def _record(number: int, _frame: object) -> None:
    EARLY_SIGNALS.append(number)


if threading.current_thread() is threading.main_thread():
    for _number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_number, _record)
