"""Start the LiDAR segmentation node: ``/<namespace>/lidar_segmentation``, from
``lidar_topic`` to ``/<namespace>/segmented_points``.

Usage::

    ros2 launch seg_perception lidar_segmentation.launch.py lidar_topic:=/velodyne_points

Every argument, with its default and meaning: ``ros2 launch seg_perception
lidar_segmentation.launch.py --show-args``, or ``launch/README.md``. The topology and the argument
checks live in :mod:`seg_perception.ros.launch_helpers` (tested without ``launch``).
"""

from seg_perception.ros import launch_helpers


def generate_launch_description():
    return launch_helpers.generate_launch_description("lidar_segmentation")
