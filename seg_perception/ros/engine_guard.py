"""Running a 2D engine on a live frame so that a failure drops the frame, not the node.

A model that was loaded fine can still fail on one image: too small for its strides, a
size its graph cannot take, out of memory. The nodes call :func:`segment_or_drop`, which
turns any such failure into a :class:`~seg_perception.ros.inputs.FrameDropError` naming the
engine, the image size and the error, counted as ``engine failure``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seg_perception.engines.preprocess import EngineInputError
from seg_perception.ros.inputs import FrameDropError


def segment_or_drop(engine: Any, image: np.ndarray, camera: str = "") -> Any:
    """``engine.segment(image)``, with every failure a FrameDropError saying what failed."""
    where = f"camera '{camera}': " if camera else ""
    size = f"{image.shape[1]}x{image.shape[0]}" if image.ndim >= 2 else str(image.shape)
    try:
        return engine.segment(image)
    except EngineInputError as error:
        raise FrameDropError("unsupported image", f"{where}{error}") from None
    except MemoryError:
        raise FrameDropError(
            "engine failure", f"{where}{engine.description} ran out of memory on a {size} image"
        ) from None
    except Exception as error:  # any backend error ends only this frame
        text = " ".join(str(error).split())[:300] or type(error).__name__
        raise FrameDropError(
            "engine failure", f"{where}{engine.description} failed on a {size} image: {text}"
        ) from None


def start_engine(node: Any, config: Any, promptable: bool = False) -> Any:
    """Load the node's engine, say what contract it runs with, and try it once.

    ``promptable``: the node prompts a promptable model (SAM) instead of labeling every
    image; a model of the other kind stops it at start-up, saying which node to run.

    Logs the model spec (and, as a warning, any normalization nothing stated), then runs one
    inference on a test image (the network's fixed size, else 480x640) so a model that
    cannot run at all stops the node at start-up with the reason, not at the first frame.
    """
    from seg_perception.engines import EngineLoadError, create_engine
    from seg_perception.ros.params import StartupError

    if not config.model:
        raise StartupError("engine.model is empty: give an ONNX file, engine, or model id")
    engine = create_engine(config)
    if hasattr(engine, "segment_prompt") != promptable:
        raise StartupError(
            f"engine.model {config.model} is a promptable model (SAM), which labels no pixels "
            "by itself: run the clicked_object node, which prompts it at RViz clicks"
            if not promptable
            else f"engine.model {config.model} is not a promptable model: the clicked_object "
            "node needs SAM (model_type sam, e.g. facebook/sam-vit-base or random:sam)"
        )
    logger = node.get_logger()
    logger.info(f"segmenting with {engine.description}")
    logger.info(f"model spec: {engine.spec.describe()}")
    if engine.spec.assumed:
        logger.warning(
            f"no spec states the model's {', '.join(engine.spec.assumed)}: assumed "
            f"SegFormer's ({engine.spec.color.upper()}, scale {engine.spec.scale:.6g}, mean "
            f"{engine.spec.mean}, std {engine.spec.std}); if the network was trained "
            "otherwise, give engine.spec (a YAML beside the model)"
        )
    size = engine.preprocessor.input_size if engine.preprocessor.resize != "none" else None
    try:
        engine.warm_up(*(size or (480, 640)))
    except EngineLoadError as error:
        raise StartupError(str(error)) from None
    return engine
