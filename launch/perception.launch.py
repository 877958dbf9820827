r"""Start the whole seg_perception graph: camera segmentation per camera, LiDAR
segmentation and fusion as separate nodes (default), or one pipeline node
(``single_process:=true``); optionally rviz2.

Usage::

    ros2 launch seg_perception perception.launch.py model:=/models/segformer_b0.onnx
    ros2 launch seg_perception perception.launch.py cameras:=front,left \
        image_topic_pattern:=/{name}/image_rect lidar_topic:=/velodyne_points rviz:=true
    ros2 launch seg_perception perception.launch.py single_process:=true device:=cuda

Every argument, with its default and meaning: ``ros2 launch seg_perception
perception.launch.py --show-args``, or ``launch/README.md``. The topology and the argument
checks live in :mod:`seg_perception.ros.launch_helpers` (tested without ``launch``).
"""

from seg_perception.ros import launch_helpers


def generate_launch_description():
    return launch_helpers.generate_launch_description("perception")
