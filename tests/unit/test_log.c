/*
 * test_log.c - log lines (core/log.h) and the fill line (fill/fill_log.h):
 * values are quoted and escaped so that a key cannot end the line or
 * forge a field; the fill line has its fields in their documented order;
 * lines go to log_file, by its name again after log_reopen (the file was
 * renamed, as logrotate does), to the open file still when the name cannot
 * be opened, and to another file or stderr when log_open runs again;
 * levels below log_level are not written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"
#include "fill/fill_log.h"

static void check_value(const char *in, const char *want)
{
    struct sl_buf b = { 0 };
    log_value(&b, in);
    assert_string_equal((const char *)b.data, want);
    sl_buf_free(&b);
}

static void test_value_escaping(void **state)
{
    (void)state;
    check_value("npm:left-pad/-/left-pad-1.3.0.tgz", "npm:left-pad/-/left-pad-1.3.0.tgz");
    check_value("generic:a/b?x=1&y=2", "generic:a/b?x=1&y=2");   /* '=' needs no quotes */
    check_value("", "\"\"");
    check_value("a b", "\"a b\"");
    check_value("say \"hi\"", "\"say \\\"hi\\\"\"");
    check_value("back\\slash", "\"back\\\\slash\"");
    check_value("x\ny outcome=stored", "\"x\\ny outcome=stored\"");
    check_value("t\tr\r", "\"t\\tr\\r\"");
    check_value("\x01\x1b\x7f", "\"\\x01\\x1b\\x7f\"");
    check_value("caf\xc3\xa9", "caf\xc3\xa9");   /* UTF-8 passes */
}

static void format(const struct fill_summary *s, char *out, size_t outlen)
{
    struct sl_buf b = { 0 };
    fill_summary_format(s, &b);
    snprintf(out, outlen, "%s", (const char *)b.data);
    sl_buf_free(&b);
}

static void test_fill_line(void **state)
{
    (void)state;
    char line[512];
    struct fill_summary s = { .route = "npm", .key = "npm:left-pad/-/left-pad-1.3.0.tgz", .origin_status = 200,
                              .bytes = 2417, .duration_ms = 41, .followers = 3, .outcome = "stored",
                              .integrity = "verified" };
    format(&s, line, sizeof(line));
    assert_string_equal(line, "fill route=npm key=npm:left-pad/-/left-pad-1.3.0.tgz origin_status=200 bytes=2417 "
                              "duration_ms=41 followers=3 outcome=stored integrity=verified");

    s = (struct fill_summary){ .route = "generic", .key = "generic:a b\"\n x=1", .origin_status = 0,
                               .duration_ms = -3, .followers = 1, .outcome = "origin-error", .integrity = "off",
                               .reason = "connect" };
    format(&s, line, sizeof(line));
    assert_string_equal(line, "fill route=generic key=\"generic:a b\\\"\\n x=1\" origin_status=- bytes=0 "
                              "duration_ms=0 followers=1 outcome=origin-error integrity=off reason=connect");
    assert_null(strchr(line, '\n'));

    s = (struct fill_summary){ .route = "generic", .key = "generic:l2", .origin_status = 200, .bytes = 5,
                               .followers = 1, .outcome = "stored", .integrity = "none", .source = "disk" };
    format(&s, line, sizeof(line));
    assert_string_equal(line, "fill route=generic key=generic:l2 origin_status=200 bytes=5 duration_ms=0 "
                              "followers=1 outcome=stored integrity=none source=disk");
}

/* ----------------------------------------------------------- log file */

static char dir[64];

static char *slurp(const char *path)
{
    char err[128];
    char *text = sl_read_text_file(path, 1 << 20, err, sizeof(err));
    assert_non_null(text);
    return text;
}

static void test_open_refused(void **state)
{
    (void)state;
    assert_int_equal(log_open("/nonexistent-dir/sluice/agent.log"), -ENOENT);
    assert_int_equal(log_open(""), 0);        /* stderr */
    assert_int_equal(log_reopen(), 0);        /* nothing to reopen */
}

static void test_file_and_reopen(void **state)
{
    (void)state;
    char path[128], rotated[128];
    snprintf(path, sizeof(path), "%s/agent.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/agent.log.1", dir);
    umask(022);
    assert_int_equal(log_open(path), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);

    log_set_level(LOG_INFO);
    log_info("before rotation %d", 1);
    log_debug("not at info level");
    assert_int_equal(rename(path, rotated), 0);
    log_warn("after rename, before reopen");
    assert_int_equal(log_reopen(), 0);
    log_error("after reopen");

    char *old = slurp(rotated), *cur = slurp(path);
    assert_non_null(strstr(old, " info before rotation 1\n"));
    assert_non_null(strstr(old, " warn after rename, before reopen\n"));
    assert_null(strstr(old, "not at info level"));
    assert_null(strstr(old, "after reopen\n"));
    assert_non_null(strstr(cur, " error after reopen\n"));
    assert_int_equal(strchr(cur, '\n') - cur + 1, (long)strlen(cur));   /* one line */
    assert_true(cur[4] == '-' && cur[19] == 'Z');   /* 2026-12-04T18:42:35Z */
    free(old);
    free(cur);
    unlink(path);
    unlink(rotated);
}

/* After test_file_and_reopen: a file that cannot be reopened leaves lines
 * going to the one open; log_open again (a reload) moves them to another
 * file, and back to stderr. */
static void test_reopen_failure_and_open_again(void **state)
{
    (void)state;
    char sub[96], path[128], moved[96], other[128];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    snprintf(path, sizeof(path), "%s/agent.log", sub);
    snprintf(moved, sizeof(moved), "%s/moved", dir);
    snprintf(other, sizeof(other), "%s/other.log", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(log_open(path), 0);
    assert_int_equal(rename(sub, moved), 0);
    assert_int_equal(log_reopen(), -ENOENT);
    log_warn("still to the open file");
    assert_int_equal(log_open(other), 0);
    log_warn("to the other file");
    assert_int_equal(log_open(""), 0);
    log_warn("to stderr");

    char moved_path[128];
    snprintf(moved_path, sizeof(moved_path), "%s/agent.log", moved);
    char *a = slurp(moved_path), *b = slurp(other);
    assert_non_null(strstr(a, " warn still to the open file\n"));
    assert_null(strstr(a, "to the other file"));
    assert_non_null(strstr(b, " warn to the other file\n"));
    assert_null(strstr(b, "to stderr"));
    free(a);
    free(b);
    unlink(moved_path);
    unlink(other);
    rmdir(moved);
}

static size_t format_line(char *line, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t len = log_format_line(line, cap, LOG_WARN, fmt, ap);
    va_end(ap);
    return len;
}

/* A message longer than the line is cut, and the line still ends. */
static void test_long_line_cut(void **state)
{
    (void)state;
    char line[64], big[200];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    size_t len = format_line(line, sizeof(line), "key=%s", big);
    assert_int_equal(len, sizeof(line) - 1);
    assert_int_equal(strlen(line), len);
    assert_int_equal(line[len - 1], '\n');
    assert_non_null(strstr(line, " warn key=kkk"));
    len = format_line(line, sizeof(line), "short");
    assert_string_equal(line + len - 7, " short\n");
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sluice-test-log-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_escaping),
        cmocka_unit_test(test_fill_line),
        cmocka_unit_test(test_long_line_cut),
        cmocka_unit_test(test_open_refused),
        cmocka_unit_test(test_file_and_reopen),
        cmocka_unit_test(test_reopen_failure_and_open_again),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
