"""Download the Hugging Face Hub weights that configs or names refer to, into the Hub's cache.

Examples:
    python tools/download_weights.py configs/mask_rcnn_coat_small_fpn_3x.py
    python tools/download_weights.py hf-hub:timm/coat_small.in1k hf-hub:timm/coat_lite_small.in1k

For a config: every `hf-hub:` name training reads (the backbone's init_cfg or pretrained, and
load_from). Run it where the Hub can be reached (a login node, say); runs that share the cache
(HF_HOME / HF_HUB_CACHE) then find the files there, also with HF_HUB_OFFLINE=1. The Hub's own
settings apply: HF_ENDPOINT (a mirror), HF_TOKEN.
"""
import argparse
import sys
from pathlib import Path
from typing import List

# From a checkout, use its coat_backbone even when the package is not installed.
ROOT = Path(__file__).resolve().parents[1]
if (ROOT / 'coat_backbone').is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from coat_backbone.checkpoint import HUB_PREFIX, CheckpointError, local_copy  # noqa: E402
from coat_backbone.engine import load_config  # noqa: E402
from coat_backbone.engine.runtime import hub_weights  # noqa: E402


def names_of(source: str) -> List[str]:
    """The Hub names of a config file, or the name itself."""
    if source.startswith(HUB_PREFIX):
        return [source]
    names = hub_weights(load_config(source).to_dict())
    if not names:
        raise ValueError(f'{source} names no Hugging Face Hub weights (hf-hub:...).')
    return names


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('sources', nargs='+', metavar='CONFIG_OR_NAME',
                        help='a config file, or a name such as hf-hub:timm/coat_small.in1k')
    args = parser.parse_args(argv)
    try:
        names = dict.fromkeys(name for source in args.sources for name in names_of(source))
        for name in names:
            print(f'{name}: {local_copy(name)}')
    except (CheckpointError, OSError, ValueError) as error:
        print(f'download_weights.py: error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
