# CoaT-Lite Small, ImageNet-1k, the official recipe with its default settings (8 GPUs x 256 images).
# Official result (top-1 / top-5): 81.9 / 95.5, checkpoint coat_lite_small_8d362f48.pth.
_base_ = './_base_/coat_in1k.py'

model = dict(backbone=dict(arch='lite_small'))
