# CoaT-Lite Tiny, ImageNet-1k, the official recipe with its default settings (8 GPUs x 256 images).
# Official result (top-1 / top-5): 77.5 / 93.8, checkpoint coat_lite_tiny_e88e96b0.pth.
_base_ = './_base_/coat_in1k.py'

model = dict(backbone=dict(arch='lite_tiny'))
