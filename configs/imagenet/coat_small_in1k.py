# CoaT Small, ImageNet-1k, the official recipe with its CoaT Small settings: 8 GPUs x 128 images,
# drop path 0.2, no EMA, 20 warm-up epochs, gradient clipping 5.0.
# Official result (top-1 / top-5): 82.1 / 96.1, checkpoint coat_small_7479cf9b.pth.
_base_ = './_base_/coat_in1k_large.py'

model = dict(backbone=dict(arch='small', drop_path_rate=0.2))
