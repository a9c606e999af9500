"""The library behind the command-line tools in tools/: building a model from an arch, a checkpoint
or a config (`builder`), FLOPs (`analysis`), attention maps (`attention`), speed and memory against
timm (`benchmark`), checkpoint conversion (`conversion`), ONNX export (`onnx_export`), training
curves (`training_logs`), prediction pictures (`visualization`) and the output checks every tool
makes before its work (`outputs`). Each module is imported where it is used; importing this package
imports none of them.
"""
