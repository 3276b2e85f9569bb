"""Measurements of ReconVLA (benchmarks/README.md). A package, so that benchmarks and tests import its
modules by name; the scripts built from several of them run from the repository root as
``python -m benchmarks.<name>``.
"""
