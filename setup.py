"""coat-backbone: the CoaT backbone for MMDetection 3.x and MMSegmentation 1.x.

Ranges here say what the package works with; the exact tested stack is pinned in constraints.txt
and installed by tools/setup_env.sh. mmcv is not listed: it has no wheels for current torch and
must be built from source (see the README), which pip's isolated builds cannot do.
"""
from setuptools import find_packages, setup

DETECTION = ['mmdet>=3.0.0,<3.4.0', 'pycocotools']
# mmseg.models imports its CLIP tokenizer, which needs ftfy and regex (not declared by mmseg).
SEGMENTATION = ['mmsegmentation>=1.0.0,<1.3.0', 'ftfy', 'regex']
# tools/export_onnx.py: export (onnxscript for torch's dynamo exporter) and the onnxruntime check.
ONNX = ['onnx', 'onnxruntime', 'onnxscript']
TESTS = ['pytest']

setup(
    name='coat-backbone',
    version='0.1.0',
    description='CoaT (Co-Scale Conv-Attentional Image Transformers) backbone for MMDetection and '
                'MMSegmentation',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['coat_backbone', 'coat_backbone.*']),
    install_requires=['torch>=2.0', 'mmengine>=0.10.0,<0.11', 'timm>=0.9', 'einops',
                      'packaging'],
    extras_require={
        'det': DETECTION,
        'seg': SEGMENTATION,
        'onnx': ONNX,
        'tests': TESTS,
        'all': DETECTION + SEGMENTATION + ONNX + TESTS,
    },
)
