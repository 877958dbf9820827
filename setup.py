"""Pip install of the seg_perception library and the `seg-perception` command.

The ROS 2 build (messages included) is the ament_cmake build in CMakeLists.txt, driven by
colcon. This file lets people without ROS install the library (core, engines, sample scene
generator, command line) with pip: the ROS-dependent modules import rclpy lazily.
"""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="seg_perception",
    version="0.1.0",
    description="Camera/LiDAR semantic segmentation and occlusion-aware label fusion for ROS 2",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["seg_perception", "seg_perception.*"]),
    # The demo's network (ONNX + model spec) and the label sets `train` ships.
    package_data={
        "seg_perception.sample": ["models/*.onnx", "models/*.yaml"],
        "seg_perception.training": ["label_sets/*.yaml"],
    },
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "PyYAML>=6.0",
        "scipy>=1.10",
        "pypcd4>=1.5",
    ],
    extras_require={
        "bag": ["rosbags>=0.10"],
        "fleet": ["rosbags>=0.10", "ray>=2.9"],
        "fast": ["numba>=0.60"],
        "test": ["pytest>=7,<9", "rosbags>=0.10"],
    },
    entry_points={
        "console_scripts": [
            "seg-perception = seg_perception.cli:main",
            # The ROS 2 nodes (need rclpy and the built messages).
            "seg-perception-camera-segmentation = "
            "seg_perception.ros.nodes.camera_segmentation:main",
            "seg-perception-lidar-segmentation = seg_perception.ros.nodes.lidar_segmentation:main",
            "seg-perception-fusion = seg_perception.ros.nodes.fusion:main",
            "seg-perception-pipeline = seg_perception.ros.nodes.pipeline:main",
            "seg-perception-clicked-object = seg_perception.ros.nodes.clicked_object:main",
        ]
    },
)
