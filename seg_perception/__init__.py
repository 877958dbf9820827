"""seg_perception: camera + LiDAR semantic segmentation and label fusion for ROS 2.

The package is split so that the numeric heart (``seg_perception.core``) runs without
ROS or torch, ``seg_perception.ros`` holds thin rclpy adapters and conversions, and
``seg_perception.sample`` generates labelled scenes for demos and tests.
"""

from pkgutil import extend_path

# The generated message modules (``seg_perception.msg``) are installed by the colcon
# build into its own prefix, while the library may come from a pip (editable) install.
# Extending ``__path__`` lets ``import seg_perception.msg`` find them in either place.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
