"""coat-backbone: CoaT backbones for MMDetection 3.x and MMSegmentation 1.x.

The version ranges are the tested ones, read from `TESTED` in coat_backbone/requirements.py (which
the import-time check uses too); the exact stacks CI tests are pinned in constraints.txt (current
torch) and constraints-torch2.1.txt (torch 2.1 with OpenMMLab's prebuilt mmcv). mmcv is checked at
import but not installed from here: PyPI has no wheels of it (see docs/getting_started.md).
"""
import ast
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def tested_ranges() -> dict:
    """`TESTED` of coat_backbone/requirements.py, read without importing the package."""
    tree = ast.parse((HERE / 'coat_backbone' / 'requirements.py').read_text(encoding='utf-8'))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == 'TESTED':
            return ast.literal_eval(node.value)
    raise RuntimeError('coat_backbone/requirements.py defines no TESTED')


def requirement(package: str) -> str:
    minimum, maximum = TESTED[package]
    return f'{package}>={minimum},<{maximum}'


TESTED = tested_ranges()
CORE = [requirement(name) for name in ('torch', 'numpy', 'mmengine', 'timm', 'huggingface_hub',
                                       'safetensors')] + ['einops', 'packaging']
DETECTION = [requirement('mmdet'), 'pycocotools']
# mmseg.models imports its CLIP tokenizer, which needs ftfy and regex (not declared by mmseg).
SEGMENTATION = [requirement('mmsegmentation'), 'ftfy', 'regex']
# tools/export_onnx.py: export (onnxscript for torch's dynamo exporter) and the onnxruntime check.
ONNX = ['onnx', 'onnxruntime', 'onnxscript']
TESTS = ['pytest']

setup(
    name='coat-backbone',
    version='0.1.0',
    description='CoaT (Co-Scale Conv-Attentional Image Transformers) backbones for MMDetection '
                'and MMSegmentation',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['coat_backbone', 'coat_backbone.*']),
    install_requires=CORE,
    extras_require={
        'det': DETECTION,
        'seg': SEGMENTATION,
        'onnx': ONNX,
        'tests': TESTS,
        'all': DETECTION + SEGMENTATION + ONNX + TESTS,
    },
)
