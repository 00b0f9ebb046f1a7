/*
 * rng.c -- the seeded generator behind initialisation and dropout masks.
 *
 * xoshiro256** (Blackman & Vigna 2018), seeded through splitmix64 as its authors recommend.
 * Same seed, same sequence on every machine: this is what makes training reproducible bit
 * for bit. Normal deviates use the Box-Muller transform in double precision.
 */
#include <math.h>

#include "descent_kernels.h"

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void dk_rng_seed(dk_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

uint64_t dk_rng_next(dk_rng *rng) {
    uint64_t *s = rng->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 24 random bits: every float it returns is exact. */
float dk_rng_uniform(dk_rng *rng) { return (float)(dk_rng_next(rng) >> 40) * 0x1.0p-24f; }

/* Uniform in [0, 1) with 24 random bits from a key and an index, no state: splitmix64's output
 * function at position index of the stream that starts at key. Any thread can compute any
 * element (dropout masks of a batch split into shards). */
float dk_rng_at(uint64_t key, uint64_t index) {
    uint64_t position = key + index * 0x9e3779b97f4a7c15ull;
    return (float)(splitmix64(&position) >> 40) * 0x1.0p-24f;
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform_double(dk_rng *rng) { return (double)(dk_rng_next(rng) >> 11) * 0x1.0p-53; }

/* Fills x[0..n) with N(0, std^2). Box-Muller: two uniforms give two independent normals. */
void dk_rng_normal(dk_rng *rng, float *x, int64_t n, double std) {
    const double two_pi = 6.283185307179586476925286766559;
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = 1.0 - uniform_double(rng);     /* (0, 1]: log(u1) is finite */
        double u2 = uniform_double(rng);
        double radius = sqrt(-2.0 * log(u1));
        x[i] = (float)(std * radius * cos(two_pi * u2));
        if (i + 1 < n) x[i + 1] = (float)(std * radius * sin(two_pi * u2));
    }
}
