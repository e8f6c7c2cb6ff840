"""Compiled per-block loops (numba, GIL released, cached on disk), one module per algorithm.

* :mod:`.common`: the jit options, centroid norms and the nearest-centroid search;
* :mod:`.lloyd`: the pixel path's assign-and-accumulate step, labelling, nearest distances;
* :mod:`.hamerly`: Hamerly's bounds for Lloyd's on in-memory points (the histogram path);
* :mod:`.histogram`: colour codes, count tables, lookup-table labelling, coarse bins;
* :mod:`.seeding`: the greedy k-means++ step, and k-means++ pruned for large K;
* :mod:`.kdtree`: a k-d tree and its exact nearest-point searches (large K).

Every kernel works on one chunk of points flattened to ``(n, C)``. In the docstrings an argument
marked OUT is written by the kernel, IN/OUT read and updated in place; the others are only read.
Importing this package imports nothing; each submodule imports numba, so callers import them
where they use them and ``import bigquant`` stays free of numba.
"""
