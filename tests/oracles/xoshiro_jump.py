"""Independent oracle for the xoshiro256** 2^128 jump (tests/StatPhysFs.Tests/RngTests.fs): the generator's transition
as a 256 x 256 matrix over GF(2), raised to 2^128 by 128 squarings, applied to the SplitMix64-seeded state of
Rng(5, 2). Run with /usr/bin/python3 (numpy); prints the first outputs after 0, 1 and 2 jumps."""
import numpy as np
M64 = (1 << 64) - 1
def rotl(x, k): return ((x << k) | (x >> (64 - k))) & M64
def nxt(s):
    s0, s1, s2, s3 = s
    res = (rotl((s1 * 5) & M64, 7) * 9) & M64
    t = (s1 << 17) & M64
    s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 45)
    return res, [s0, s1, s2, s3]
def seed_state(seed, stream):
    z = (seed ^ ((stream * 0xD1B54A32D192ED03) & M64) ^ 0x9E3779B97F4A7C15) & M64
    out = []
    for _ in range(4):
        z = (z + 0x9E3779B97F4A7C15) & M64
        x = z
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
        out.append(x ^ (x >> 31))
    return out
def to_bits(s): return np.array([(s[w] >> b) & 1 for w in range(4) for b in range(64)], dtype=np.int64)
def from_bits(v): return [sum(int(v[w*64+b]) << b for b in range(64)) for w in range(4)]
# transition matrix: column j = next(e_j)
T = np.zeros((256, 256), dtype=np.int64)
for j in range(256):
    e = [0, 0, 0, 0]; e[j // 64] = 1 << (j % 64)
    _, ns = nxt(e)
    T[:, j] = to_bits(ns)
P = T.copy()
# T^(2^128): square 128 times
for _ in range(128):
    P = (P @ P) % 2
s = seed_state(5, 3)  # Rng(5, 2): stream index 2 + 1
print("first output of Rng(5,2):", hex(nxt(s)[0]))
sj = from_bits((P @ to_bits(s)) % 2)
print("first output after one jump:", hex(nxt(sj)[0]))
sj2 = from_bits((P @ to_bits(sj)) % 2)
print("first output after two jumps:", hex(nxt(sj2)[0]))
