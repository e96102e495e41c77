// SHA-256 over the system's OpenSSL libcrypto (Debian libssl-dev), for the server's audit
// chain: the leaves, effects and tree nodes a node hashes as it applies entries
// (Sources/FaunaStore/SHA256Parts+libcrypto.swift). One call per message, its context on the
// stack: no allocation, where swift-crypto's `SHA256` allocates a context per hash and copies
// it to finalize (2.7x the time for a 65-byte node, docs/PERFORMANCE.md).
#ifndef CSHA256_H
#define CSHA256_H

#include <stddef.h>
#include <stdint.h>

// SHA-256 of `a ‖ b ‖ c` into `out`. A part of length 0 may have a NULL pointer.
void fauna_sha256_parts(const void *a, size_t a_length, const void *b, size_t b_length,
                        const void *c, size_t c_length, uint8_t out[32]);

#endif
