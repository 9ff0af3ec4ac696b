/*
 * key.h - what identifies a cached object, and where it lives on disk.
 *
 * A key is the text "<route>:<canonical path>[?<canonical query>]" built by
 * route/canon.c, the one place that turns a request into its canonical
 * form (the SPOP verdict and the HTTP side both go through it, so they
 * always agree). This module only hashes keys and names their files.
 *
 * On disk an object lives at <cache_dir>/objects/<h0h1>/<h2h3>/<64 hex>, where
 * the hex is SHA-256 of the key text (nginx-style two directory levels), so
 * no file name is ever built from request bytes.
 */
#ifndef SLUICE_KEY_H
#define SLUICE_KEY_H

#include <stddef.h>
#include <stdint.h>

#define KEY_MAX 2048
#define KEY_HASH_LEN 32
#define KEY_HEX_LEN 64

void key_hash(const char *key, size_t key_len, uint8_t out[KEY_HASH_LEN]);
void key_hex(const uint8_t hash[KEY_HASH_LEN], char out[KEY_HEX_LEN + 1]);

/* "objects/ab/cd/<hex>" relative to the cache dir (out >= 80 bytes). */
void key_rel_path(const uint8_t hash[KEY_HASH_LEN], char *out, size_t outlen);

#endif
