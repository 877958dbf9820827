"""Start the clicked-object node: click a point in RViz (Publish Point), get that object's
points from a promptable model (SAM) prompted in every camera that sees it; optionally
rviz2.

Usage::

    ros2 launch seg_perception clicked_object.launch.py model:=facebook/sam-vit-base rviz:=true

Every argument, with its default and meaning: ``ros2 launch seg_perception
clicked_object.launch.py --show-args``, or ``launch/README.md``. The topology and the
argument checks live in :mod:`seg_perception.ros.launch_helpers` (tested without
``launch``).
"""

from seg_perception.ros import launch_helpers


def generate_launch_description():
    return launch_helpers.generate_launch_description("clicked_object")
