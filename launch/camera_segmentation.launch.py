r"""Start one camera segmentation node per camera: ``<name>_segmentation`` in
``/<namespace>/<name>``, publishing ``labels``, ``color_mask``, ``overlay``, ``class_map``
(and ``confidence``) there.

Usage::

    ros2 launch seg_perception camera_segmentation.launch.py cameras:=front,rear \
        model:=/models/segformer_b0.onnx

Every argument, with its default and meaning: ``ros2 launch seg_perception
camera_segmentation.launch.py --show-args``, or ``launch/README.md``. The topology and the argument
checks live in :mod:`seg_perception.ros.launch_helpers` (tested without ``launch``).
"""

from seg_perception.ros import launch_helpers


def generate_launch_description():
    return launch_helpers.generate_launch_description("camera_segmentation")
