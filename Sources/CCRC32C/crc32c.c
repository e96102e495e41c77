// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the SSE4.2 `crc32` instruction where
// the CPU has it, else slicing-by-8 tables. See include/ccrc32c.h.
#include "ccrc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

// MARK: Portable: slicing-by-8, eight 256-entry tables, eight input bytes per step.

#define FAUNA_CRC32C_POLY 0x82F63B78u

// tables[k][b]: the CRC of byte b followed by k zero bytes.
static uint32_t tables[8][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_init(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t crc = b;
        for (int i = 0; i < 8; i++) crc = (crc & 1) ? (crc >> 1) ^ FAUNA_CRC32C_POLY : crc >> 1;
        tables[0][b] = crc;
    }
    for (int k = 1; k < 8; k++) {
        for (int b = 0; b < 256; b++) {
            uint32_t prev = tables[k - 1][b];
            tables[k][b] = tables[0][prev & 0xFF] ^ (prev >> 8);
        }
    }
}

static inline uint32_t load_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t fauna_crc32c_update_portable(uint32_t state, const void *data, size_t n) {
    pthread_once(&tables_once, tables_init);
    const unsigned char *p = data;
    uint32_t crc = state;
    while (n >= 8) {
        uint32_t lo = crc ^ load_le32(p);
        uint32_t hi = load_le32(p + 4);
        crc = tables[7][lo & 0xFF] ^ tables[6][(lo >> 8) & 0xFF]
            ^ tables[5][(lo >> 16) & 0xFF] ^ tables[4][lo >> 24]
            ^ tables[3][hi & 0xFF] ^ tables[2][(hi >> 8) & 0xFF]
            ^ tables[1][(hi >> 16) & 0xFF] ^ tables[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        crc = tables[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
        p++;
        n--;
    }
    return crc;
}

// MARK: Hardware: one `crc32` instruction per 8 bytes (x86-64 with SSE4.2).

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_hardware(uint32_t state, const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t crc = state;
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);  // an unaligned load; x86 is little-endian, as the CRC wants
        crc = _mm_crc32_u64(crc, word);
        p += 8;
        n -= 8;
    }
    uint32_t crc32 = (uint32_t)crc;
    while (n > 0) {
        crc32 = _mm_crc32_u8(crc32, *p);
        p++;
        n--;
    }
    return crc32;
}
#endif

// MARK: Dispatch, decided once.

// -1: not decided yet; 0: portable; 1: hardware. Racing first callers decide the same way.
static int hardware = -1;

int fauna_crc32c_hardware(void) {
    int h = __atomic_load_n(&hardware, __ATOMIC_RELAXED);
    if (h < 0) {
#if defined(__x86_64__)
        __builtin_cpu_init();
        h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
        h = 0;
#endif
        __atomic_store_n(&hardware, h, __ATOMIC_RELAXED);
    }
    return h;
}

uint32_t fauna_crc32c_update(uint32_t state, const void *data, size_t n) {
#if defined(__x86_64__)
    if (fauna_crc32c_hardware()) return crc32c_hardware(state, data, n);
#endif
    return fauna_crc32c_update_portable(state, data, n);
}
