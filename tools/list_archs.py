"""Print the CoaT variants with their output channels and measured parameter counts.

Usage: python tools/list_archs.py
"""
from coat_backbone import ARCH_SETTINGS, CoaT, CoaTClassifier


def millions(model) -> str:
    return f'{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M'


def main() -> None:
    print('| arch | out_channels (strides 4/8/16/32) | serial depths | parallel depth | '
          'backbone params | classifier params (1000 classes) |')
    print('|---|---|---|---|---|---|')
    for arch, settings in ARCH_SETTINGS.items():
        print(f"| `{arch}` | {', '.join(map(str, settings['embed_dims']))} | "
              f"{', '.join(map(str, settings['serial_depths']))} | {settings['parallel_depth']} | "
              f'{millions(CoaT(arch))} | {millions(CoaTClassifier(arch))} |')


if __name__ == '__main__':
    main()
