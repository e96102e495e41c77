// OpenSSL 3 marks the SHA256_Init family deprecated in favour of EVP. For the short messages
// of a Merkle tree EVP costs about twice as much per hash on this machine (a fetched digest and
// a reused EVP_MD_CTX: 179 ns against 95 ns for 65 bytes), so the direct functions are used;
// they run the same SHA-NI/AVX code.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "csha256.h"

void fauna_sha256_parts(const void *a, size_t a_length, const void *b, size_t b_length,
                        const void *c, size_t c_length, uint8_t out[32]) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    if (a_length > 0) SHA256_Update(&ctx, a, a_length);
    if (b_length > 0) SHA256_Update(&ctx, b, b_length);
    if (c_length > 0) SHA256_Update(&ctx, c, c_length);
    SHA256_Final(out, &ctx);
}
