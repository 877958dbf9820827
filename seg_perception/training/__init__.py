"""Training and fine-tuning of 2D segmentation networks: ``seg-perception train``.

Folders of images and label PNGs (:mod:`.datasets`), label sets with ignore ids and
remaps (:mod:`.labels`), the deployed preprocessing plus augmentations (:mod:`.augment`),
any transformers semantic-segmentation model (:mod:`.model`), the loop with validation,
checkpoints and resume (:mod:`.loop`), and the verified ONNX export (:mod:`.deploy`);
:mod:`.generated` writes generated street scenes as training data.
"""
