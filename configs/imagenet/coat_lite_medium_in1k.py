# CoaT-Lite Medium, ImageNet-1k, the official recipe with its CoaT-Lite Medium settings: 8 GPUs x
# 128 images, drop path 0.3, no EMA, 20 warm-up epochs, gradient clipping 5.0.
# Official result (top-1 / top-5): 83.6 / 96.7, checkpoint coat_lite_medium_a750cd63.pth.
_base_ = './_base_/coat_in1k_large.py'

model = dict(backbone=dict(arch='lite_medium', drop_path_rate=0.3))
