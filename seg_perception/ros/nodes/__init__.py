"""The ROS 2 nodes. Importing this package limits BLAS to one thread (unless set already).

The nodes' BLAS calls are tiny (3x3 by 3xN products) and gain nothing from threads, while
OpenBLAS' spinning worker threads cost about 90 ms of CPU per frame on a 2-core machine
(measured with bench/bench_ros_latency.py); with both cores saturated the single-process
node fell behind at 10 Hz and dropped frames. It must happen before numpy is imported,
which the node modules below do.
"""

import os

# Only numpy's BLAS: ONNX Runtime and PyTorch keep their own thread settings
# (engine.num_threads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
