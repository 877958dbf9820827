"""The LiDAR-side classes a planner reads from ``lidar_class``, defined once.

Every point of a cloud gets one of these, whether or not a camera sees it:

* ``UNKNOWN`` (0): no usable return (NaN/inf, a zero "no return" point, closer than the
  sensor's minimum or beyond its maximum range) or a return well *below* the estimated
  ground, which on a road is a multipath reflection, not a surface; or a return at the
  foot of a steep face, where floor and face cannot be told apart. Treat as "no
  information", neither free nor occupied.
* ``GROUND`` (1): drivable-looking ground surface (road, sidewalk, terrain...).
* ``OBSTACLE`` (2): everything else above the ground.

Zero is "unknown" so a zero-initialized buffer means "not classified". 3-254 are kept free
for finer classes a learned segmenter may add later; 255 is not used, so it can never be
confused with the camera ``label`` field's "unlabeled". ``cluster`` ids (int32) number the
obstacle clusters from 0, largest first; ``NO_CLUSTER`` (-1) marks ground, unknown,
noise and points of clusters outside the size limits.
"""

from __future__ import annotations

UNKNOWN = 0
GROUND = 1
OBSTACLE = 2

NO_CLUSTER = -1

LIDAR_CLASS_NAMES: dict[int, str] = {UNKNOWN: "unknown", GROUND: "ground", OBSTACLE: "obstacle"}
