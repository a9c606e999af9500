# CoaT-Lite Mini, ImageNet-1k, the official recipe with its default settings (8 GPUs x 256 images).
# Official result (top-1 / top-5): 79.1 / 94.5, checkpoint coat_lite_mini_6b4a8ae5.pth.
_base_ = './_base_/coat_in1k.py'

model = dict(backbone=dict(arch='lite_mini'))
