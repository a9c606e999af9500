"""Tiny CoaT widths for fast CPU tests where the published widths are not needed."""
TINY_COAT = dict(embed_dims=[16, 32, 32, 32], serial_depths=[1, 1, 1, 1], parallel_depth=2,
                 num_heads=8, mlp_ratios=[2, 2, 2, 2])
TINY_LITE = dict(embed_dims=[16, 24, 32, 40], serial_depths=[1, 2, 1, 1], parallel_depth=0,
                 num_heads=8, mlp_ratios=[2, 2, 2, 2])
TINY_ARCHS = {'parallel': TINY_COAT, 'lite': TINY_LITE}
