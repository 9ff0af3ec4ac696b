/*
 * test_config.c - settings table, value parsers, file syntax, environment
 * precedence, origins, printing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/config_impl.h"

/* ------------------------------------------------------------ helpers */

static char err[512];

static void assert_err_contains(const char *needle)
{
    if (!strstr(err, needle))
        fail_msg("error '%s' does not contain '%s'", err, needle);
}

/* Write text to a temporary file; returns its path (static buffer). */
static const char *temp_file(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/sluice-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static int parse_text(struct sluice_config *cfg, const char *text)
{
    config_defaults(cfg);
    return config_parse_text(cfg, text, "test.conf", err, sizeof(err));
}

/* ---------------------------------------------------------- durations */

/* The defaults agree: every fill the per-origin cap lets run at once gets
 * about 1 MiB of spool (its chunk being filled, the one being written, and
 * a write or two of slack) before writers that keep up are detached for
 * memory (spool_memory_max's help, docs/backpressure.md). */
static void test_the_default_spool_holds_the_per_origin_cap(void **state)
{
    (void)state;
    struct sluice_config c;
    config_defaults(&c);
    assert_true(c.spool_memory_max >= (uint64_t)c.origin_max_in_flight_per_origin * 1024 * 1024);
    assert_true(c.spool_memory_prefault <= c.spool_memory_max);   /* an idle agent holds no more */
}

static void test_duration_forms(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ms;
    } ok[] = {
        { "10", 10000 },       { "0", 0 },           { "500ms", 500 },   { "500MS", 500 },
        { "500Ms", 500 },      { "3s", 3000 },       { "3S", 3000 },     { "2m", 120000 },
        { "2M", 120000 },      { "1h", 3600000 },    { "1H", 3600000 },  { "1.5s", 1500 },
        { "1.5", 1500 },       { "0.5m", 30000 },    { "1.25h", 4500000 }, { "0.001s", 1 },
        { "1.000s", 1000 },    { "007s", 7000 },     { "0ms", 0 },       { "2.50s", 2500 },
        { "9223372036854775807ms", INT64_MAX },
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t ms = -1;
        if (config_parse_duration_ms(ok[i].in, &ms) != 0)
            fail_msg("'%s' should parse", ok[i].in);
        if (ms != ok[i].ms)
            fail_msg("'%s' gave %lld, want %lld", ok[i].in, (long long)ms, (long long)ok[i].ms);
    }
}

static void test_duration_errors(void **state)
{
    (void)state;
    static const char *bad[] = {
        "", "-1", "-1s", "-0", "s", "ms", "1x", "1 s", " 1s", "1s ", "1ss", "1sm", "1.s",
        ".5s", "1..5s", "1.5.s", "1e3", "0x10", "+5s", "1,5s", "1.5ms", "0.0001s", "10d",
        "1us", "abc", "9223372036854775808ms", "9223372036854775807s", "99999999999999999999",
        "1h1m", "\t1s",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 42;
        if (config_parse_duration_ms(bad[i], &ms) == 0)
            fail_msg("'%s' should be rejected (got %lld)", bad[i], (long long)ms);
        assert_int_equal(ms, 42); /* untouched on error */
    }
}

/* -------------------------------------------------------------- sizes */

static void test_size_forms(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t bytes;
    } ok[] = {
        { "512", 512 },
        { "0", 0 },
        { "512b", 512 },
        { "512B", 512 },
        { "64K", 65536 },
        { "64k", 65536 },
        { "64KB", 65536 },
        { "64kb", 65536 },
        { "64KiB", 65536 },
        { "64kib", 65536 },
        { "64KIB", 65536 },
        { "6M", 6ULL << 20 },
        { "6MiB", 6ULL << 20 },
        { "10G", 10ULL << 30 },
        { "10gb", 10ULL << 30 },
        { "1T", 1ULL << 40 },
        { "1TiB", 1ULL << 40 },
        { "1.5G", 3ULL << 29 },
        { "0.5K", 512 },
        { "16777215T", 16777215ULL << 40 },
        { "18446744073709551615", UINT64_MAX },
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t b = 1;
        if (config_parse_size(ok[i].in, &b) != 0)
            fail_msg("'%s' should parse", ok[i].in);
        if (b != ok[i].bytes)
            fail_msg("'%s' gave %llu, want %llu", ok[i].in, (unsigned long long)b,
                     (unsigned long long)ok[i].bytes);
    }
}

static void test_unix_socket_errors(void **state)
{
    (void)state;
    struct sluice_config cfg;
    config_defaults(&cfg);
    static const char *bad_modes[] = { "", "660x", "0800", "1777", "7", "00600", "-600", "rw" };
    for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
        assert_int_equal(config_set(&cfg, "unix_socket_mode", bad_modes[i], err, sizeof(err)), -1);
        assert_non_null(strstr(err, "octal"));
    }
    assert_int_equal(config_set(&cfg, "unix_socket_group", "no-such-group-here", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no such group"));
    assert_string_equal(cfg.unix_socket_mode, "0600");
    assert_string_equal(cfg.unix_socket_group, "");
}

static void test_size_errors(void **state)
{
    (void)state;
    static const char *bad[] = {
        "", "-1", "-1K", "K", "KB", "iB", "10Q", "10iB", "10KiBB", "10Kb ", " 10K", "10 K",
        "1.5", "1.K", ".5K", "0x10", "+5", "1e3", "16777216T", "18446744073709551616",
        "99999999999999999999999", "10P", "10KK", "1,5K", "abc", "1.1B",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t b = 42;
        if (config_parse_size(bad[i], &b) == 0)
            fail_msg("'%s' should be rejected (got %llu)", bad[i], (unsigned long long)b);
        assert_int_equal(b, 42);
    }
}

/* ----------------------------------------------------------- defaults */

static void test_defaults(void **state)
{
    (void)state;
    struct sluice_config cfg;
    config_defaults(&cfg);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.spop_listen, "unix:var/run/spop.sock");   /* not any local user's */
    assert_string_equal(cfg.unix_socket_mode, "0600");
    assert_string_equal(cfg.unix_socket_group, "");
    assert_int_equal(cfg.spop_frame_timeout, 5000);
    assert_int_equal(cfg.spop_idle_timeout, 300000);   /* above HAProxy's timeout idle / server */
    assert_int_equal(cfg.spop_max_connections, 512);
    assert_int_equal(cfg.request_target_max, 8192);    /* what the HTTP side takes */
    assert_int_equal(cfg.request_segments_max, 128);
    assert_string_equal(cfg.http_listen, "unix:var/run/http.sock");   /* not any local user's */
    assert_string_equal(cfg.admin_listen, "127.0.0.1:8093");
    assert_string_equal(cfg.cache_dir, "./var/cache");
    assert_int_equal(cfg.cache_max_size, 10ULL << 30);
    assert_int_equal(cfg.cache_min_free, 1ULL << 30);
    assert_string_equal(cfg.routes_map, "haproxy/routes.map");
    assert_int_equal(cfg.client_stall_timeout, 10000);
    assert_int_equal(cfg.origin_connect_timeout, 5000);
    assert_int_equal(cfg.origin_stall_timeout, 30000);
    assert_int_equal(cfg.cache_write_timeout, 5000);
    assert_int_equal(cfg.fill_buffer_size, 8ULL << 20);
    assert_int_equal(cfg.fill_background_max_size, 1ULL << 30);
    assert_int_equal(cfg.object_max_size, 8ULL << 30);
    assert_int_equal(cfg.origin_max_in_flight, 512);
    assert_int_equal(cfg.origin_max_in_flight_per_origin, 256);
    assert_int_equal(cfg.origin_limit_adaptive, 1);
    assert_int_equal(cfg.origin_limit_start, 32);
    assert_int_equal(cfg.origin_queue_max, 1024);
    assert_int_equal(cfg.origin_queue_timeout, 30000);
    assert_int_equal(cfg.workers, 4);
    assert_string_equal(cfg.log_level, "info");
}

static void test_origin_defaults(void **state)
{
    (void)state;
    struct sluice_config cfg;
    config_defaults(&cfg);
    assert_string_equal(config_origin(&cfg, "npm"), "https://registry.npmjs.org");
    assert_string_equal(config_origin(&cfg, "pypi"), "https://pypi.org");
    assert_string_equal(config_origin(&cfg, "pypi_files"), "https://files.pythonhosted.org");
    assert_string_equal(config_origin(&cfg, "cargo_index"), "https://index.crates.io");
    assert_string_equal(config_origin(&cfg, "cargo_dl"), "https://static.crates.io");
    assert_string_equal(config_origin(&cfg, "maven"), "https://repo.maven.apache.org/maven2");
    assert_string_equal(config_origin(&cfg, "go"), "https://proxy.golang.org");
    assert_null(config_origin(&cfg, "generic"));
    assert_null(config_origin(&cfg, "nosuchroute"));
}

/* ------------------------------------------------------- config_set */

static void test_set_each_type(void **state)
{
    (void)state;
    struct sluice_config cfg;
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "cache_max_size", "64KiB", err, sizeof(err)), 0);
    assert_int_equal(cfg.cache_max_size, 65536);
    assert_int_equal(config_set(&cfg, "client_stall_timeout", "250ms", err, sizeof(err)), 0);
    assert_int_equal(cfg.client_stall_timeout, 250);
    assert_int_equal(config_set(&cfg, "workers", "64", err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 64);
    assert_int_equal(config_set(&cfg, "log_level", "debug", err, sizeof(err)), 0);
    assert_string_equal(cfg.log_level, "debug");
    assert_int_equal(config_set(&cfg, "listen", "[::1]:443", err, sizeof(err)), 0);
    assert_string_equal(cfg.listen, "[::1]:443");
    assert_int_equal(config_set(&cfg, "http_listen", "unix:/run/sluice/http.sock", err, sizeof(err)), 0);
    assert_string_equal(cfg.http_listen, "unix:/run/sluice/http.sock");
    assert_int_equal(config_set(&cfg, "spop_listen", "unix:var/run/spop.sock", err, sizeof(err)), 0);
    assert_string_equal(cfg.spop_listen, "unix:var/run/spop.sock");
    assert_int_equal(config_set(&cfg, "unix_socket_mode", "0660", err, sizeof(err)), 0);
    assert_string_equal(cfg.unix_socket_mode, "0660");
    assert_int_equal(config_set(&cfg, "unix_socket_group", "0", err, sizeof(err)), 0);
    assert_int_equal(config_set(&cfg, "unix_socket_group", "root", err, sizeof(err)), 0);
    assert_string_equal(cfg.unix_socket_group, "root");
    assert_int_equal(config_set(&cfg, "cache_dir", "/var/cache/sluice", err, sizeof(err)), 0);
    assert_string_equal(cfg.cache_dir, "/var/cache/sluice");
    assert_int_equal(config_set(&cfg, "cache_min_free", "0", err, sizeof(err)), 0);
    assert_int_equal(cfg.cache_min_free, 0);
    assert_int_equal(config_set(&cfg, "origin_queue_max", "0", err, sizeof(err)), 0);
    assert_int_equal(cfg.origin_queue_max, 0);
}

static void expect_set_error(const char *name, const char *value, const char *needle)
{
    struct sluice_config cfg, before;
    config_defaults(&cfg);
    before = cfg;
    err[0] = '\0';
    if (config_set(&cfg, name, value, err, sizeof(err)) == 0)
        fail_msg("%s = '%s' should be rejected", name, value);
    if (strncmp(err, name, strlen(name)) != 0)
        fail_msg("error '%s' should start with the setting name", err);
    assert_err_contains(needle);
    assert_memory_equal(&cfg, &before, sizeof(cfg)); /* a failed set changes nothing */
}

static void test_set_validation(void **state)
{
    (void)state;
    expect_set_error("workers", "0", "at least 1");
    expect_set_error("workers", "65", "at most 64");
    expect_set_error("workers", "-1", "at least 1");
    expect_set_error("workers", "4.0", "bad integer");
    expect_set_error("workers", "", "bad integer");
    expect_set_error("workers", " 4", "bad integer");
    expect_set_error("workers", "+4", "bad integer");
    expect_set_error("workers", "99999999999999999999", "bad integer");
    expect_set_error("origin_max_in_flight", "0", "at least 1");
    expect_set_error("client_stall_timeout", "0", "at least 1");
    expect_set_error("client_stall_timeout", "0s", "at least 1");
    expect_set_error("origin_queue_timeout", "-5s", "negative");
    expect_set_error("origin_connect_timeout", "5x", "bad duration '5x'");
    expect_set_error("cache_write_timeout", "", "empty");
    expect_set_error("cache_max_size", "10Q", "bad size '10Q'");
    expect_set_error("cache_max_size", "0", "at least 1");
    expect_set_error("cache_max_size", "-1G", "negative");
    expect_set_error("cache_max_size", "18446744073709551615", "too large");
    expect_set_error("fill_buffer_size", "1K", "at least 65536");
    expect_set_error("log_level", "verbose", "one of debug, info, warn, error");
    expect_set_error("log_level", "", "one of");
    expect_set_error("listen", "8080", "host:port");
    expect_set_error("listen", ":8080", "host:port");
    expect_set_error("listen", "127.0.0.1:0", "1..65535");
    expect_set_error("listen", "127.0.0.1:65536", "1..65535");
    expect_set_error("listen", "127.0.0.1:", "bad port");
    expect_set_error("listen", "127.0.0.1:80a", "bad port");
    expect_set_error("listen", "[::1]", "host:port");
    expect_set_error("listen", "[::g]:80", "IPv6");
    expect_set_error("listen", "a b:80", "host:port");
    expect_set_error("http_listen", "unix:", "empty UNIX socket path");
    char longpath[160] = "unix:/";
    memset(longpath + 6, 'p', 120);
    longpath[126] = '\0';
    expect_set_error("http_listen", longpath, "too long");
    expect_set_error("cache_dir", "", "must not be empty");
    expect_set_error("cache_dir", "/tmp/a\nb", "control character");
    expect_set_error("routes_map", "", "must not be empty");
    expect_set_error("no_such_setting", "1", "unknown setting");
    expect_set_error("Workers", "4", "unknown setting");
}

static void test_set_string_too_long(void **state)
{
    (void)state;
    char big[CONFIG_PATH_MAX + 10];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_set_error("cache_dir", big, "too long");
    big[CONFIG_PATH_MAX - 1] = '\0'; /* exactly fits */
    struct sluice_config cfg;
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "cache_dir", big, err, sizeof(err)), 0);
    assert_int_equal(strlen(cfg.cache_dir), CONFIG_PATH_MAX - 1);
}

/* ----------------------------------------------------------- origins */

static void test_origin_override_and_off(void **state)
{
    (void)state;
    struct sluice_config cfg;
    config_defaults(&cfg);
    int n = cfg.n_origins;
    assert_int_equal(config_set(&cfg, "origin_npm", "http://127.0.0.1:4873", err, sizeof(err)),
                     0);
    assert_string_equal(config_origin(&cfg, "npm"), "http://127.0.0.1:4873");
    assert_int_equal(cfg.n_origins, n); /* replaced, not added */
    assert_int_equal(config_set(&cfg, "origin_npm", "", err, sizeof(err)), 0);
    assert_null(config_origin(&cfg, "npm"));
    assert_int_equal(config_set(&cfg, "origin_generic", "https://files.example.com/base",
                                err, sizeof(err)),
                     0);
    assert_string_equal(config_origin(&cfg, "generic"), "https://files.example.com/base");
    /* an open set: any valid route name */
    assert_int_equal(config_set(&cfg, "origin_my_repo2", "http://[::1]:9000", err, sizeof(err)),
                     0);
    assert_string_equal(config_origin(&cfg, "my_repo2"), "http://[::1]:9000");
    assert_int_equal(cfg.n_origins, n + 1);
}

static void test_origin_errors(void **state)
{
    (void)state;
    expect_set_error("origin_npm", "ftp://example.com", "http");
    expect_set_error("origin_npm", "https://user@example.com", "user-info");
    expect_set_error("origin_npm", "https://example.com/?a=1", "query");
    expect_set_error("origin_npm", "https://example.com:0", "port");
    expect_set_error("origin_", "https://example.com", "bad route name");
    expect_set_error("origin_NPM", "https://example.com", "bad route name");
    expect_set_error("origin_a-b", "https://example.com", "bad route name");
    expect_set_error("origin_abcdefghijabcdefghijabcdefghij12", "https://example.com",
                     "bad route name");
}

static void test_origin_table_full(void **state)
{
    (void)state;
    struct sluice_config cfg;
    config_defaults(&cfg);
    char name[32];
    int i = 0;
    while (cfg.n_origins < CONFIG_MAX_ORIGINS) {
        snprintf(name, sizeof(name), "origin_r%d", i++);
        assert_int_equal(config_set(&cfg, name, "http://h", err, sizeof(err)), 0);
    }
    assert_int_equal(config_set(&cfg, "origin_onemore", "http://h", err, sizeof(err)), -1);
    assert_err_contains("too many origins");
    /* replacing an existing one still works */
    assert_int_equal(config_set(&cfg, "origin_r0", "", err, sizeof(err)), 0);
}

/* --------------------------------------------------------- file syntax */

static void test_file_syntax(void **state)
{
    (void)state;
    struct sluice_config cfg;
    const char *text =
        "# a comment\n"
        "\n"
        "   \t\n"
        "workers = 8\n"
        "  log_level=warn   # trailing comment\n"
        "cache_dir = \"/var/cache/with # hash\"  # comment after quotes\n"
        "routes_map=\"  spaced  \"\n"
        "cache_max_size\t=\t20G\r\n"
        "origin_generic = \"http://files.example.com\"\n"
        "origin_npm =\n"
        "client_stall_timeout = 1.5s\n"
        "workers = 9\n"; /* last one wins */
    assert_int_equal(parse_text(&cfg, text), 0);
    assert_int_equal(cfg.workers, 9);
    assert_string_equal(cfg.log_level, "warn");
    assert_string_equal(cfg.cache_dir, "/var/cache/with # hash");
    assert_string_equal(cfg.routes_map, "  spaced  ");
    assert_int_equal(cfg.cache_max_size, 20ULL << 30);
    assert_string_equal(config_origin(&cfg, "generic"), "http://files.example.com");
    assert_null(config_origin(&cfg, "npm"));
    assert_int_equal(cfg.client_stall_timeout, 1500);
}

static void test_file_no_trailing_newline(void **state)
{
    (void)state;
    struct sluice_config cfg;
    assert_int_equal(parse_text(&cfg, "workers = 3"), 0);
    assert_int_equal(cfg.workers, 3);
    assert_int_equal(parse_text(&cfg, ""), 0);
}

static void expect_file_error(const char *text, const char *needle)
{
    struct sluice_config cfg;
    err[0] = '\0';
    if (parse_text(&cfg, text) == 0)
        fail_msg("text should be rejected:\n%s", text);
    assert_err_contains(needle);
}

static void test_file_errors(void **state)
{
    (void)state;
    expect_file_error("workers = 4\n\n# c\nwrokers = 4\n", "test.conf:4: wrokers: unknown setting");
    expect_file_error("cache_max_size = 10Q\n", "test.conf:1: cache_max_size: bad size '10Q'");
    expect_file_error("workers\n", "test.conf:1: expected 'name = value'");
    expect_file_error(" = 4\n", "test.conf:1: missing setting name");
    expect_file_error("cache_dir = \"/tmp\n", "test.conf:1: cache_dir: unterminated quote");
    expect_file_error("cache_dir = \"/tmp\" x\n", "after closing quote");
    expect_file_error("workers = 4 4\n", "bad integer '4 4'");
    expect_file_error("a\nb\nc\nd\ne\nf\n", "test.conf:1:");
    expect_file_error("\n\n\n\n\nlog_level = loud\n", "test.conf:6: log_level");
    expect_file_error("origin_npm = https://u:p@registry.npmjs.org\n", "test.conf:1: origin_npm");
    expect_file_error("listen = 127.0.0.1:8080 extra\n", "test.conf:1: listen");
}

static void test_load_file_and_missing(void **state)
{
    (void)state;
    struct sluice_config cfg;
    const char *path = temp_file("workers = 2\ncache_dir = /srv/cache\n");
    assert_int_equal(config_load(&cfg, path, NULL, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 2);
    assert_string_equal(cfg.cache_dir, "/srv/cache");
    unlink(path);

    path = temp_file("workers = 2\nbogus = 1\n");
    assert_int_equal(config_load(&cfg, path, NULL, err, sizeof(err)), -1);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: bogus: unknown setting", path);
    assert_string_equal(err, want);
    unlink(path);

    assert_int_equal(config_load(&cfg, "/nonexistent/sluice.conf", NULL, err, sizeof(err)), -1);
    assert_err_contains("/nonexistent/sluice.conf");
    assert_int_equal(config_load(&cfg, "/tmp", NULL, err, sizeof(err)), -1);

    /* NULL or "" path: defaults only */
    assert_int_equal(config_load(&cfg, NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(config_load(&cfg, "", NULL, err, sizeof(err)), 0);
}

/* -------------------------------------------------------- environment */

static void test_env_precedence(void **state)
{
    (void)state;
    struct sluice_config cfg;
    const char *path = temp_file("workers = 2\ncache_max_size = 5G\nlog_level = warn\n");
    char *envp[] = {
        "PATH=/usr/bin",
        "SLUICE_WORKERS=7",                      /* env beats file */
        "SLUICE_CLIENT_STALL_TIMEOUT=2m",        /* env beats default */
        "SLUICE_ORIGIN_NPM=",                    /* empty origin: route off */
        "SLUICE_ORIGIN_GENERIC=http://127.0.0.1:9999/files",
        "SLUICE_ORIGIN_PRIVATE_REPO=https://repo.internal",
        "SLUICE_FAULT=enospc_after=3",           /* someone else's */
        "SLUICE_SPOP_ADDR=127.0.0.1:1",          /* HAProxy's, not a setting */
        "SLUICE_workers=9",                      /* not upper case: not ours */
        "SLUICE_=x",
        "SLUICE_NOEQUALS",
        "WORKERS=11",
        NULL,
    };
    assert_int_equal(config_load(&cfg, path, envp, err, sizeof(err)), 0);
    unlink(path);
    assert_int_equal(cfg.workers, 7);
    assert_int_equal(cfg.cache_max_size, 5ULL << 30); /* file beats default */
    assert_string_equal(cfg.log_level, "warn");
    assert_int_equal(cfg.client_stall_timeout, 120000);
    assert_null(config_origin(&cfg, "npm"));
    assert_string_equal(config_origin(&cfg, "generic"), "http://127.0.0.1:9999/files");
    assert_string_equal(config_origin(&cfg, "private_repo"), "https://repo.internal");
    assert_string_equal(config_origin(&cfg, "pypi"), "https://pypi.org");
    assert_string_equal(cfg.spop_listen, "unix:var/run/spop.sock");
}

static void test_env_last_wins_and_errors(void **state)
{
    (void)state;
    struct sluice_config cfg;
    char *envp1[] = { "SLUICE_WORKERS=3", "SLUICE_WORKERS=5", NULL };
    assert_int_equal(config_load(&cfg, NULL, envp1, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 5);

    char *envp2[] = { "SLUICE_CACHE_MAX_SIZE=10Q", NULL };
    assert_int_equal(config_load(&cfg, NULL, envp2, err, sizeof(err)), -1);
    assert_string_equal(err, "environment: SLUICE_CACHE_MAX_SIZE: bad size '10Q': "
                             "not a number with a known unit (e.g. 512, 64K, 8M, 10G, 1T)");

    char *envp3[] = { "SLUICE_ORIGIN_GO=gopher://x", NULL };
    assert_int_equal(config_load(&cfg, NULL, envp3, err, sizeof(err)), -1);
    assert_err_contains("environment: SLUICE_ORIGIN_GO:");

    char *envp4[] = { "SLUICE_WORKERS=", NULL }; /* empty is a value, and a bad one */
    assert_int_equal(config_load(&cfg, NULL, envp4, err, sizeof(err)), -1);
    assert_err_contains("SLUICE_WORKERS");
}

/* ----------------------------------------------------------- printing */

static char *print_to_string(const struct sluice_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_print(cfg, f);
    fclose(f);
    return buf;
}

static void test_print_defaults(void **state)
{
    (void)state;
    struct sluice_config cfg;
    config_defaults(&cfg);
    char *text = print_to_string(&cfg);
    static const char *lines[] = {
        "listen = 127.0.0.1:8080\n",   "cache_max_size = 10G\n",
        "cache_min_free = 1G\n",       "client_stall_timeout = 10s\n",
        "fill_buffer_size = 8M\n",     "workers = 4\n",
        "log_level = info\n",          "origin_npm = https://registry.npmjs.org\n",
        "origin_generic = \"\"\n",     "origin_maven = https://repo.maven.apache.org/maven2\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        if (!strstr(text, lines[i]))
            fail_msg("print output lacks '%s':\n%s", lines[i], text);
    free(text);
}

static void test_redact_hides_credentials(void **state)
{
    (void)state;
    char out[256];
    config_redact("origin_npm", "https://user:pw@registry.example/npm", out, sizeof(out));
    assert_string_equal(out, "https://<redacted>@registry.example/npm");
    config_redact("origin_npm", "https://registry.example/a@b", out, sizeof(out));   /* '@' in the path */
    assert_string_equal(out, "https://registry.example/a@b");
    config_redact("listen", "127.0.0.1:8080", out, sizeof(out));
    assert_string_equal(out, "127.0.0.1:8080");
    config_redact("s3_secret_access_key", "abc", out, sizeof(out));
    assert_string_equal(out, "<redacted>");
    config_redact("s3_access_key", "AKIA", out, sizeof(out));
    assert_string_equal(out, "<redacted>");
    config_redact("s3_session_token", "", out, sizeof(out));   /* unset stays visibly unset */
    assert_string_equal(out, "");
    assert_false(config_is_secret("cache_max_size"));
    assert_false(config_is_secret("admin_listen"));
    for (size_t i = 0; i < config_n_settings; i++)   /* no setting today holds credentials */
        assert_false(config_is_secret(config_settings[i].name));
}

/* A reload keeps the running value of each setting that needs a restart,
 * and takes every other one. */
static void test_keep_restart_settings(void **state)
{
    (void)state;
    static struct sluice_config running, fresh;
    assert_int_equal(parse_text(&running, "workers = 2\ncache_dir = /a\n"), 0);
    assert_int_equal(parse_text(&fresh, "workers = 3\ncache_dir = /b\nmetadata_ttl = 1m\n"
                                        "http_listen = unix:/tmp/x.sock\n"), 0);
    assert_int_equal(config_keep_restart_settings(&fresh, &running), 3);
    assert_int_equal(fresh.workers, 2);
    assert_string_equal(fresh.cache_dir, "/a");
    assert_string_equal(fresh.http_listen, running.http_listen);
    assert_int_equal(fresh.metadata_ttl, 60000);
    assert_int_equal(config_keep_restart_settings(&fresh, &running), 0);
}

static void test_print_round_trip(void **state)
{
    (void)state;
    struct sluice_config a, b;
    const char *text = "client_stall_timeout = 1500ms\n"
                       "origin_stall_timeout = 90s\n"
                       "origin_queue_timeout = 2h\n"
                       "cache_max_size = 1536M\n"
                       "cache_min_free = 0\n"
                       "object_max_size = 1000\n"
                       "cache_dir = \"/a # b\"\n"
                       "routes_map = \" lead\"\n"
                       "origin_local = http://[::1]:81/x\n";
    assert_int_equal(parse_text(&a, text), 0);
    char *printed = print_to_string(&a);
    assert_int_equal(parse_text(&b, printed), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_non_null(strstr(printed, "client_stall_timeout = 1500ms\n"));
    assert_non_null(strstr(printed, "origin_stall_timeout = 90s\n"));
    assert_non_null(strstr(printed, "origin_queue_timeout = 2h\n"));
    assert_non_null(strstr(printed, "cache_max_size = 1536M\n"));
    assert_non_null(strstr(printed, "object_max_size = 1000\n"));
    assert_non_null(strstr(printed, "cache_dir = \"/a # b\"\n"));
    free(printed);
}

static void test_print_markdown(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print_markdown(f);
    fclose(f);
    assert_non_null(strstr(buf, "| Setting | Environment variable | Default | Description |\n"));
    assert_non_null(strstr(buf, "| `cache_max_size` | `SLUICE_CACHE_MAX_SIZE` | `10G` |"));
    assert_non_null(strstr(buf, "| `origin_max_in_flight_per_origin` | "
                                "`SLUICE_ORIGIN_MAX_IN_FLIGHT_PER_ORIGIN` | `256` |"));
    assert_non_null(strstr(buf, "| `origin_pypi_files` | `SLUICE_ORIGIN_PYPI_FILES` | "
                                "`https://files.pythonhosted.org` |"));
    assert_non_null(strstr(buf, "| `origin_generic` | `SLUICE_ORIGIN_GENERIC` | (off) |"));
    /* every row has four cells */
    int rows = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        int bars = 0;
        for (char *p = line; *p; p++)
            bars += *p == '|';
        assert_int_equal(bars, 5);
        rows++;
    }
    assert_true(rows >= 2 + 21 + 8);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_forms),
        cmocka_unit_test(test_duration_errors),
        cmocka_unit_test(test_size_forms),
        cmocka_unit_test(test_size_errors),
        cmocka_unit_test(test_unix_socket_errors),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_origin_defaults),
        cmocka_unit_test(test_set_each_type),
        cmocka_unit_test(test_set_validation),
        cmocka_unit_test(test_set_string_too_long),
        cmocka_unit_test(test_origin_override_and_off),
        cmocka_unit_test(test_origin_errors),
        cmocka_unit_test(test_origin_table_full),
        cmocka_unit_test(test_file_syntax),
        cmocka_unit_test(test_file_no_trailing_newline),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_load_file_and_missing),
        cmocka_unit_test(test_env_precedence),
        cmocka_unit_test(test_env_last_wins_and_errors),
        cmocka_unit_test(test_print_defaults),
        cmocka_unit_test(test_keep_restart_settings),
        cmocka_unit_test(test_print_round_trip),
        cmocka_unit_test(test_redact_hides_credentials),
        cmocka_unit_test(test_print_markdown),
        cmocka_unit_test(test_the_default_spool_holds_the_per_origin_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
