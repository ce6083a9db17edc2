"""Near-duplicate search over 64-bit perceptual hashes, without comparing every pair.

Banding: split the 64 bits into `max_bits + 1` bands. Two hashes within `max_bits` differing bits must agree
exactly on at least one band (pigeonhole), so only hashes sharing a band value are compared.
"""

from __future__ import annotations

import numpy as np


def hex_to_uint64(hexes: list[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in hexes], dtype=np.uint64)


def close_pairs(hashes: np.ndarray, max_bits: int) -> list[tuple[int, int, int]]:
    """All (i, j, distance) with i < j and Hamming distance(hashes[i], hashes[j]) <= max_bits."""
    if not 0 <= max_bits < 64:
        raise ValueError(f"max_bits must be in [0, 63] for 64-bit hashes, got {max_bits}")
    n = len(hashes)
    if n < 2:
        return []
    n_bands = min(max_bits + 1, 64)
    edges = np.linspace(0, 64, n_bands + 1).astype(int)
    found: dict[tuple[int, int], int] = {}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = np.uint64((1 << int(hi - lo)) - 1)
        keys = (hashes >> np.uint64(lo)) & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        # Runs of equal band values are the candidate buckets.
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], n]
        for s, e in zip(starts, ends, strict=True):
            if e - s < 2:
                continue
            idx = np.sort(order[s:e])
            dist = np.bitwise_count(hashes[idx][:, None] ^ hashes[idx][None, :])
            ii, jj = np.nonzero(np.triu(dist <= max_bits, k=1))
            for a, b in zip(ii, jj, strict=True):
                found[(int(idx[a]), int(idx[b]))] = int(dist[a, b])
    return [(i, j, d) for (i, j), d in sorted(found.items())]


def connected_groups(n: int, pairs: list[tuple[int, int, int]]) -> np.ndarray:
    """Union-find over `pairs`: the group number (the smallest member index) of each of n items."""
    parent = np.arange(n)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, _ in pairs:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([root(i) for i in range(n)])
