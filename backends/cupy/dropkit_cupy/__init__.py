"""CuPy (CUDA) backend for dropkit.

CuPy is imported only when the backend is loaded (:mod:`dropkit_cupy.backend`);
importing this package or listing backends works on machines without CUDA.
"""
