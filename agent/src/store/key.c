/*
 * key.c - key hashes and object file names (see key.h).
 */
#include "store/key.h"

#include <pthread.h>
#include <stdio.h>

#include <openssl/evp.h>

#include "core/common.h"

/* SHA-256 fetched once: OpenSSL 3 otherwise looks the algorithm up (a
 * locked table) on every digest, which showed in the hit path's profile.
 * Never freed; it lives as long as the process. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    SL_ASSERT(sha256_md != NULL);
}

void key_hash(const char *key, size_t key_len, uint8_t out[KEY_HASH_LEN])
{
    SL_ASSERT(key && out);
    pthread_once(&sha256_once, sha256_fetch);
    unsigned int n = 0;
    int ok = EVP_Digest(key, key_len, out, &n, sha256_md, NULL);
    SL_ASSERT(ok == 1 && n == KEY_HASH_LEN);
}

void key_hex(const uint8_t hash[KEY_HASH_LEN], char out[KEY_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    SL_ASSERT(hash && out);
    for (int i = 0; i < KEY_HASH_LEN; i++) {
        out[2 * i] = hex[hash[i] >> 4];
        out[2 * i + 1] = hex[hash[i] & 15];
    }
    out[KEY_HEX_LEN] = '\0';
}

void key_rel_path(const uint8_t hash[KEY_HASH_LEN], char *out, size_t outlen)
{
    SL_ASSERT(hash && out && outlen >= 80);
    char hex[KEY_HEX_LEN + 1];
    key_hex(hash, hex);
    snprintf(out, outlen, "objects/%.2s/%.2s/%s", hex, hex + 2, hex);
}
