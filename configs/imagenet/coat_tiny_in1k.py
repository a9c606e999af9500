# CoaT Tiny, ImageNet-1k, the official recipe with its default settings (8 GPUs x 256 images).
# Official result (top-1 / top-5): 78.3 / 94.0, checkpoint coat_tiny_c6efc33c.pth.
_base_ = './_base_/coat_in1k.py'

model = dict(backbone=dict(arch='tiny'))
