"""rviz/seg_perception.rviz: valid YAML with the displays and topics the nodes publish."""

from __future__ import annotations

from pathlib import Path

import yaml

RVIZ = Path(__file__).resolve().parents[1] / "rviz" / "seg_perception.rviz"


def test_rviz_config_shows_the_published_topics():
    config = yaml.safe_load(RVIZ.read_text())
    displays = config["Visualization Manager"]["Displays"]
    by_name = {d["Name"]: d for d in displays}
    rgb = by_name["Labeled cloud (class colors)"]
    assert rgb["Class"] == "rviz_default_plugins/PointCloud2"
    assert rgb["Topic"]["Value"] == "/seg_perception/labeled_points_rgb"
    assert rgb["Color Transformer"] == "RGB8"
    labels = by_name["Labeled cloud (label field)"]
    assert labels["Topic"]["Value"] == "/seg_perception/labeled_points"
    assert labels["Channel Name"] == "label"
    overlay = by_name["Camera overlay"]
    assert overlay["Class"] == "rviz_default_plugins/Image"
    assert overlay["Topic"]["Value"] == "/seg_perception/front/overlay"
    objects = by_name["Objects (panoptic models)"]
    assert objects["Class"] == "rviz_default_plugins/MarkerArray"
    assert objects["Topic"]["Value"] == "/seg_perception/instance_markers"
    tools = {t["Class"]: t for t in config["Visualization Manager"]["Tools"]}
    assert tools["rviz_default_plugins/PublishPoint"]["Topic"]["Value"] == "/clicked_point"
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"]
