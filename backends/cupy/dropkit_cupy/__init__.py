"""CuPy (CUDA) backend for dropkit.

CuPy is imported only when the backend is loaded (:mod:`dropkit_cupy.backend`);
importing this package or listing backends works on machines without CUDA.

Modules: ``kernels_src`` (the CUDA C source of every kernel, shared with a host
harness), ``launch`` (each launch's arguments, without CuPy), ``host`` (the
source built for the CPU, for tests), ``kernels`` (the compiled modules and
launches) and ``backend`` (the backend object). The same kernels on torch CUDA
tensors are the torch backend's (:mod:`dropkit_torch.cuda`).
"""
