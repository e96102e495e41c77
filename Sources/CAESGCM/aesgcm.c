#include "caesgcm.h"

#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct fauna_gcm_key {
    uint8_t key[32];
    const EVP_CIPHER *cipher;
    pthread_mutex_t lock;
    // Contexts with the key set up, one pool per direction.
    EVP_CIPHER_CTX *pool[2][FAUNA_GCM_POOL];
    int count[2];
};

enum { SEAL = 0, OPEN = 1 };

fauna_gcm_key *fauna_gcm_key_new(const uint8_t key[32]) {
    fauna_gcm_key *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    memcpy(k->key, key, 32);
    k->cipher = EVP_aes_256_gcm();
    pthread_mutex_init(&k->lock, NULL);
    return k;
}

void fauna_gcm_key_free(fauna_gcm_key *k) {
    if (!k) return;
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < k->count[d]; i++) EVP_CIPHER_CTX_free(k->pool[d][i]);
    pthread_mutex_destroy(&k->lock);
    OPENSSL_cleanse(k->key, sizeof k->key);
    free(k);
}

// A context of `k` for direction `d`, its key set up; NULL on failure.
static EVP_CIPHER_CTX *take(fauna_gcm_key *k, int d) {
    EVP_CIPHER_CTX *ctx = NULL;
    pthread_mutex_lock(&k->lock);
    if (k->count[d] > 0) ctx = k->pool[d][--k->count[d]];
    pthread_mutex_unlock(&k->lock);
    if (ctx) return ctx;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx) return NULL;
    int ok = d == SEAL ? EVP_EncryptInit_ex(ctx, k->cipher, NULL, k->key, NULL)
                       : EVP_DecryptInit_ex(ctx, k->cipher, NULL, k->key, NULL);
    if (ok != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static void give_back(fauna_gcm_key *k, int d, EVP_CIPHER_CTX *ctx) {
    pthread_mutex_lock(&k->lock);
    if (k->count[d] < FAUNA_GCM_POOL) {
        k->pool[d][k->count[d]++] = ctx;
        ctx = NULL;
    }
    pthread_mutex_unlock(&k->lock);
    if (ctx) EVP_CIPHER_CTX_free(ctx);
}

int fauna_gcm_seal(fauna_gcm_key *k, const uint8_t nonce[12], const uint8_t *aad, size_t aad_length,
                   const uint8_t *in, size_t length, uint8_t *out, uint8_t tag[16]) {
    if (length > INT_MAX || aad_length > INT_MAX) return 0;
    EVP_CIPHER_CTX *ctx = take(k, SEAL);
    if (!ctx) return 0;
    int n = 0, ok = EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1
        && (aad_length == 0 || EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_length) == 1)
        && (length == 0 || EVP_EncryptUpdate(ctx, out, &n, in, (int)length) == 1)
        && EVP_EncryptFinal_ex(ctx, out + n, &n) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    if (ok) {
        give_back(k, SEAL, ctx);
    } else {
        EVP_CIPHER_CTX_free(ctx);  // state unknown: not reused
    }
    return ok;
}

int fauna_gcm_open(fauna_gcm_key *k, const uint8_t nonce[12], const uint8_t *aad, size_t aad_length,
                   const uint8_t *in, size_t length, const uint8_t tag[16], uint8_t *out) {
    if (length > INT_MAX || aad_length > INT_MAX) return 0;
    EVP_CIPHER_CTX *ctx = take(k, OPEN);
    if (!ctx) return 0;
    uint8_t expected[16];
    memcpy(expected, tag, 16);
    int n = 0, ok = EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1
        && (aad_length == 0 || EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_length) == 1)
        && (length == 0 || EVP_DecryptUpdate(ctx, out, &n, in, (int)length) == 1)
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, expected) == 1;
    // Final checks the tag; a mismatch leaves the context usable (a new IV resets it).
    int verified = ok && EVP_DecryptFinal_ex(ctx, out + n, &n) == 1;
    if (ok) {
        give_back(k, OPEN, ctx);
    } else {
        EVP_CIPHER_CTX_free(ctx);
    }
    return verified;
}
