"""Embedding: the corpus's vectors, by backend (torch, int8 ONNX, static, Ray), cached in DuckDB."""
