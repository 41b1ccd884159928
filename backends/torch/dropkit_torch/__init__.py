"""PyTorch backend for dropkit; torch is imported only when the backend is loaded."""
