"""Start the fusion node: ``/<namespace>/fusion`` labels ``points_topic`` with the label
images of ``/<namespace>/<name>/labels`` (the camera segmentation nodes' output) and
publishes ``labeled_points``, ``labeled_points_rgb``, ``fusion_status``, ``class_map``.

Usage::

    ros2 launch seg_perception fusion.launch.py cameras:=front,left

Every argument, with its default and meaning: ``ros2 launch seg_perception
fusion.launch.py --show-args``, or ``launch/README.md``. The topology and the argument
checks live in :mod:`seg_perception.ros.launch_helpers` (tested without ``launch``).
"""

from seg_perception.ros import launch_helpers


def generate_launch_description():
    return launch_helpers.generate_launch_description("fusion")
