// AES-256-GCM over the system's OpenSSL libcrypto (Debian libssl-dev), for encryption at rest
// (Sources/FaunaStore/Encryption.swift, docs/adr/0013-encryption-at-rest.md).
//
// A key keeps cipher contexts with its key schedule already set up, so sealing a value costs
// the cipher and the tag, not a key expansion and a GHASH table per call (what swift-crypto's
// one-shot API pays). Thread-safe: each call takes a context from the key's pool under a
// mutex, or makes one if the pool is empty; at most FAUNA_GCM_POOL are kept.
#ifndef CAESGCM_H
#define CAESGCM_H

#include <stddef.h>
#include <stdint.h>

#define FAUNA_GCM_POOL 16

typedef struct fauna_gcm_key fauna_gcm_key;

// A key from 32 bytes; NULL if the library cannot make a context.
fauna_gcm_key *fauna_gcm_key_new(const uint8_t key[32]);
void fauna_gcm_key_free(fauna_gcm_key *key);

// Encrypts `length` bytes of `in` into `out` (same length) and writes the 16-byte tag, with
// `aad` authenticated. 1 on success, 0 on a library failure.
int fauna_gcm_seal(fauna_gcm_key *key, const uint8_t nonce[12], const uint8_t *aad, size_t aad_length,
                   const uint8_t *in, size_t length, uint8_t *out, uint8_t tag[16]);

// Decrypts and checks the tag. 1 if it matches (out holds the plaintext), 0 otherwise.
int fauna_gcm_open(fauna_gcm_key *key, const uint8_t nonce[12], const uint8_t *aad, size_t aad_length,
                   const uint8_t *in, size_t length, const uint8_t tag[16], uint8_t *out);

#endif
