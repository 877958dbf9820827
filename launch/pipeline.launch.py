"""Start the single-process pipeline node: ``/<namespace>/pipeline`` does camera
segmentation, LiDAR segmentation and fusion in one process; optionally rviz2.

Usage::

    ros2 launch seg_perception pipeline.launch.py model:=/models/segformer_b0.onnx rviz:=true

Every argument, with its default and meaning: ``ros2 launch seg_perception
pipeline.launch.py --show-args``, or ``launch/README.md``. The topology and the argument
checks live in :mod:`seg_perception.ros.launch_helpers` (tested without ``launch``).
"""

from seg_perception.ros import launch_helpers


def generate_launch_description():
    return launch_helpers.generate_launch_description("pipeline")
