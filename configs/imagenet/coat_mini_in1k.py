# CoaT Mini, ImageNet-1k, the official recipe with its default settings (8 GPUs x 256 images).
# Official result (top-1 / top-5): 81.0 / 95.2, checkpoint coat_mini_40667eec.pth.
_base_ = './_base_/coat_in1k.py'

model = dict(backbone=dict(arch='mini'))
