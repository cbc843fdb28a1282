"""Hot loops only: Numba kernels for the CPU, torch kernels for CPU/GPU and autograd.

Kernels import nothing from otdiv but each other; they trust their inputs (validated
upstream in ``otdiv._array``).
"""
