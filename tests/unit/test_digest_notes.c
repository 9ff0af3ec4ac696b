/*
 * test_digest_notes.c - the expected-digest table (eco/digest_notes.c):
 * notes found by name and replaced in place; a full set gives way oldest
 * first and never returns another name's digest; the published forms
 * (hex, SRI lists) parsed strictly; digest_format's text; recorded puts
 * (digest_notes_record) replayed into a table that forgot them bring the
 * same notes back, and nothing is recorded once recording stops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "eco/digest_notes.h"

static struct eco_digest sha256_of(unsigned seed)
{
    struct eco_digest d = { .algorithm = "SHA256", .len = 32 };
    for (size_t i = 0; i < d.len; i++)
        d.value[i] = (uint8_t)(seed * 7 + i);
    return d;
}

static void test_put_get_replace(void **state)
{
    (void)state;
    struct digest_notes *t = digest_notes_new(64);
    struct eco_digest a = sha256_of(1), b = sha256_of(2), got;
    assert_false(digest_notes_get(t, "npm:x", 5, &got));
    digest_notes_put(t, "npm:x", 5, &a);
    assert_true(digest_notes_get(t, "npm:x", 5, &got));
    assert_string_equal(got.algorithm, "SHA256");
    assert_memory_equal(got.value, a.value, 32);
    digest_notes_put(t, "npm:x", 5, &b);   /* replaced, not added */
    assert_true(digest_notes_get(t, "npm:x", 5, &got));
    assert_memory_equal(got.value, b.value, 32);
    assert_false(digest_notes_get(t, "npm:y", 5, &got));
    digest_notes_free(t);
}

/* A table of 2 (one set of two ways): the third name evicts the oldest. */
static void test_a_full_set_forgets_its_oldest(void **state)
{
    (void)state;
    struct digest_notes *t = digest_notes_new(2);
    struct eco_digest d = sha256_of(3), got;
    char name[16];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "k%d", i);
        d.value[0] = (uint8_t)i;
        digest_notes_put(t, name, strlen(name), &d);
    }
    assert_false(digest_notes_get(t, "k0", 2, &got));
    assert_true(digest_notes_get(t, "k1", 2, &got));
    assert_int_equal(got.value[0], 1);
    assert_true(digest_notes_get(t, "k2", 2, &got));
    assert_int_equal(got.value[0], 2);
    digest_notes_free(t);
}

/* With far more names than room, every answer is still its own name's. */
static void test_never_another_names_digest(void **state)
{
    (void)state;
    struct digest_notes *t = digest_notes_new(100);
    char name[32];
    for (unsigned i = 0; i < 5000; i++) {
        struct eco_digest d = sha256_of(i);
        snprintf(name, sizeof(name), "name-%u", i);
        digest_notes_put(t, name, strlen(name), &d);
    }
    int found = 0;
    for (unsigned i = 0; i < 5000; i++) {
        struct eco_digest want = sha256_of(i), got;
        snprintf(name, sizeof(name), "name-%u", i);
        if (digest_notes_get(t, name, strlen(name), &got)) {
            found++;
            assert_memory_equal(got.value, want.value, 32);
        }
    }
    assert_true(found > 0 && found <= 100);
    assert_int_equal(digest_notes_puts(t), 5000);
    digest_notes_free(t);
}

static void test_published_forms(void **state)
{
    (void)state;
    struct eco_digest d;
    assert_true(digest_parse_hex("SHA1", "0123456789ABCDEF0123456789abcdef01234567", 40, &d));
    assert_int_equal(d.len, 20);
    assert_int_equal(d.value[0], 0x01);
    assert_false(digest_parse_hex("SHA1", "0123456789abcdef0123456789abcdef0123456", 39, &d));
    assert_false(digest_parse_hex("SHA1", "0123456789abcdef0123456789abcdef0123456g", 40, &d));
    assert_false(digest_parse_hex("MD5", "0123456789abcdef0123456789abcdef", 32, &d));
    /* SRI: the strongest of a list; options after '?' ignored; junk refused */
    const char *sri = "sha1-ASNFZ4mrze8BI0VniavN7wEjRWc= sha256-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=?x";
    assert_true(digest_parse_sri(sri, strlen(sri), &d));
    assert_string_equal(d.algorithm, "SHA256");
    assert_int_equal(d.value[31], 31);
    assert_false(digest_parse_sri("sha512-short", 12, &d));
    assert_false(digest_parse_sri("md5-AAAA", 8, &d));
    assert_false(digest_parse_sri("", 0, &d));
    char text[80];
    struct eco_digest one = { .algorithm = "SHA1", .len = 20 };
    memset(one.value, 0xab, 20);
    digest_format(&one, text, sizeof(text));
    assert_string_equal(text, "sha1:abababababababababababababababababababab");
    assert_int_equal(digest_length("sha512"), 64);
    assert_int_equal(digest_length("md5"), 0);
}

static void test_record_and_replay(void **state)
{
    (void)state;
    struct digest_notes *t = digest_notes_new(8);
    struct sl_buf rec = { 0 };
    struct eco_digest a = sha256_of(1), b = sha256_of(2), got;
    digest_notes_record(t, &rec);
    digest_notes_put(t, "npm:a", 5, &a);
    digest_notes_put(t, "npm:b", 5, &b);
    digest_notes_record(t, NULL);
    size_t recorded = rec.len;
    digest_notes_put(t, "npm:c", 5, &a);   /* not recording */
    assert_int_equal(rec.len, recorded);
    assert_true(recorded > 0);
    for (unsigned i = 0; i < 64; i++) {   /* push a and b out of their sets */
        char name[32];
        int n = snprintf(name, sizeof(name), "npm:filler-%u", i);
        struct eco_digest f = sha256_of(100 + i);
        digest_notes_put(t, name, (size_t)n, &f);
    }
    uint64_t puts = digest_notes_puts(t);
    digest_notes_replay(t, rec.data, rec.len);
    assert_int_equal(digest_notes_puts(t), puts + 2);
    assert_true(digest_notes_get(t, "npm:a", 5, &got));
    assert_memory_equal(got.value, a.value, 32);
    assert_true(digest_notes_get(t, "npm:b", 5, &got));
    assert_memory_equal(got.value, b.value, 32);
    sl_buf_free(&rec);
    digest_notes_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace),
        cmocka_unit_test(test_a_full_set_forgets_its_oldest),
        cmocka_unit_test(test_never_another_names_digest),
        cmocka_unit_test(test_published_forms),
        cmocka_unit_test(test_record_and_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
