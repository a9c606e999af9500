"""Tiny CoaT and CoAtNet widths for fast CPU tests where the published widths are not needed."""
TINY_COAT = dict(embed_dims=[16, 32, 32, 32], serial_depths=[1, 1, 1, 1], parallel_depth=2,
                 num_heads=8, mlp_ratios=[2, 2, 2, 2])
TINY_LITE = dict(embed_dims=[16, 24, 32, 40], serial_depths=[1, 2, 1, 1], parallel_depth=0,
                 num_heads=8, mlp_ratios=[2, 2, 2, 2])
TINY_ARCHS = {'parallel': TINY_COAT, 'lite': TINY_LITE}
# Tiny CoAtNets: a bias-table style (coatnet_0_rw's blocks) and an rmlp style; the attention
# widths are multiples of the 32-channel heads (1-3 heads).
TINY_COATNET = dict(embed_dims=[16, 32, 64, 96], depths=[1, 1, 3, 1], stem_width=[8, 16],
                    style='coatnet_0_rw')
TINY_COATNET_RMLP = dict(TINY_COATNET, style='coatnet_rmlp_nano_rw')
TINY_COATNETS = {'bias': TINY_COATNET, 'rmlp': TINY_COATNET_RMLP}
