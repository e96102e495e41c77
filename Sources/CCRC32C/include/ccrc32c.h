// CRC-32C (Castagnoli) for FaunaRPC's frame checksums (Sources/FaunaRPC/CRC32C.swift).
// A C target because Swift cannot reach the SSE4.2 `crc32` instruction: with it the checksum
// runs several times faster than the Swift slicing-by-8 tables (docs/PERFORMANCE.md
// "CRC32C in hardware"). Elsewhere a portable table version in C gives the same answers.
#ifndef FAUNA_CCRC32C_H
#define FAUNA_CCRC32C_H
#include <stddef.h>
#include <stdint.h>

/// Adds `n` bytes at `data` to the running, uninverted CRC-32C `state` and returns the new state.
/// Start from 0xFFFFFFFF; the checksum is `~state` (as `CRC32C.Update` does). `data` may be
/// NULL when `n` is 0. Uses the `crc32` instruction when `fauna_crc32c_hardware()`, else the
/// portable tables.
uint32_t fauna_crc32c_update(uint32_t state, const void *data, size_t n);

/// The portable table version (slicing-by-8) of `fauna_crc32c_update`, on any CPU. For tests.
uint32_t fauna_crc32c_update_portable(uint32_t state, const void *data, size_t n);

/// 1 if `fauna_crc32c_update` uses the CPU's CRC-32C instruction (x86-64 with SSE4.2), else 0.
/// Decided once, at the first call of either function.
int fauna_crc32c_hardware(void);

#endif
