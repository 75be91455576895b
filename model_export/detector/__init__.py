"""The detector trained for real recordings: recording-chain augmentation (:mod:`.chain`), real
train-split windows and composites (:mod:`.realdata`), training with hard-negative mining and a
logit output that does not saturate in int8 (:mod:`.fit`), and the ``yh-model`` commands (:mod:`.cli`).
"""
