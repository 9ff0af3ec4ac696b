/*
 * test_key.c - key hashes and the on-disk layout of objects (store/key.h).
 * How a request becomes a key is route/canon.h's job: test_canon.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/key.h"

/* ------------------------------------------------------ hash and layout */

static void check_hash(const char *key, const char *want_hex)
{
    uint8_t hash[KEY_HASH_LEN];
    char hex[KEY_HEX_LEN + 1];
    char rel[96];
    char want_rel[96];
    key_hash(key, strlen(key), hash);
    key_hex(hash, hex);
    assert_string_equal(hex, want_hex);
    key_rel_path(hash, rel, sizeof(rel));
    snprintf(want_rel, sizeof(want_rel), "objects/%.2s/%.2s/%s", want_hex, want_hex + 2,
             want_hex);
    assert_string_equal(rel, want_rel);
}

static void test_hash_hex_path(void **state)
{
    (void)state;
    /* expected values: printf %s KEY | sha256sum */
    check_hash("npm:left-pad/-/left-pad-1.3.0.tgz",
               "8bbee96edc0c97802b44a672c988de452fdd70f8461d250024527f6294ecefc7");
    check_hash("generic:a/b?x=1", "f555b76879acb90ad79e5ea8d0e09b21e011a9b681ecd24a8738d5ca943e24c6");
    check_hash("go:x", "370e080ef1966eff2df131aeeb5f3e87a2d44d96977e57b5f3aa6f470c545fa9");

    uint8_t hash[KEY_HASH_LEN];
    char rel[80];
    key_hash("go:x", 4, hash);
    key_rel_path(hash, rel, sizeof(rel)); /* the documented minimum is enough */
    assert_string_equal(rel, "objects/37/0e/"
                             "370e080ef1966eff2df131aeeb5f3e87a2d44d96977e57b5f3aa6f470c545fa9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_hex_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
