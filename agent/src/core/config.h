/*
 * config.h - every agent setting, its default, and how it is loaded.
 *
 * One table (config.c: `settings[]`) lists every setting with its type,
 * default and one-line description; the parser, the environment overrides,
 * `sluice --print-config` and docs/configuration.md all follow that table.
 *
 * Precedence, lowest first: built-in default, config file, environment.
 * The environment variable of a setting is "SLUICE_" + its name in upper case
 * (cache_max_size -> SLUICE_CACHE_MAX_SIZE).
 *
 * File syntax: one `name = value` per line; '#' starts a comment; blank lines
 * ignored; surrounding whitespace trimmed; values may be wrapped in double
 * quotes. Unknown names are errors (a typo must not silently fall back to a
 * default).
 *
 * Durations: a number of seconds with an optional unit, case-insensitive:
 * "500ms", "3s", "2m", "1h", "1.5s", "10" (= 10 s). Stored in milliseconds.
 * Sizes: bytes with an optional unit, case-insensitive, powers of 1024:
 * "64K", "6M", "10G", "1T", "512" (= 512 bytes); a trailing "B"/"iB" is
 * accepted ("64KB", "64KiB"). Stored in bytes.
 *
 * Origins: one setting per route, `origin_<route>` (SLUICE_ORIGIN_<ROUTE>).
 * Routes come from the route map (route.h), so the set of origin settings is
 * open: any `origin_<name>` is accepted in the file or environment. The
 * ecosystems' routes have defaults (the public registries, eco/eco.h); the
 * generic route has none and stays off until set. An empty value turns a
 * route off. `origin_<route>_redirect_hosts` lists the hosts that origin may
 * redirect to (default: the ecosystem's, usually none).
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_ADDR_MAX 128
#define CONFIG_PATH_MAX 1024
#define CONFIG_URL_MAX 1024
#define CONFIG_MAX_ORIGINS 64
#define CONFIG_ROUTE_NAME_MAX 32

struct config_origin {
    char route[CONFIG_ROUTE_NAME_MAX]; /* e.g. "npm", "pypi_files" */
    char url[CONFIG_URL_MAX];          /* "" = route off */
    char redirect_hosts[CONFIG_URL_MAX];
    bool redirect_hosts_set;           /* false: the ecosystem's default */
};

#define CONFIG_MAX_OVERRIDES 128

/*
 * Some settings can be set per route: `route_<route>_<setting>` (env
 * SLUICE_ROUTE_<ROUTE>_<SETTING>), e.g. route_go_origin_queue_timeout = 2m.
 * Those are the settings marked "per route" in docs/configuration.md.
 */
struct config_route_override {
    char route[CONFIG_ROUTE_NAME_MAX];
    const char *setting;                /* a name from the settings table */
    int64_t value;
};

struct sluice_config {
    /* listeners */
    char listen[CONFIG_ADDR_MAX];       /* edge address HAProxy binds: 127.0.0.1:8080 */
    char spop_listen[CONFIG_ADDR_MAX];  /* SPOP agent: unix:var/run/spop.sock */
    char http_listen[CONFIG_ADDR_MAX];  /* agent HTTP side: 127.0.0.1:8092 */
    char admin_listen[CONFIG_ADDR_MAX]; /* metrics/health: 127.0.0.1:8093 */
    char unix_socket_mode[8];           /* 0600: rights of the UNIX socket files */
    char unix_socket_group[64];         /* "": the agent's group */
    int64_t spop_frame_timeout;         /* 5s: a frame, or the HELLO from the connect, completes */
    int64_t spop_idle_timeout;          /* 5m: an SPOP connection with no frame is closed (0: never) */
    int64_t spop_max_connections;       /* 512: more are refused (0: no cap) */
    uint64_t request_target_max;        /* 8k: longer path + query: 414 */
    int64_t request_segments_max;       /* 128: more path segments: 414 */
    char public_url[CONFIG_URL_MAX];    /* "" = http://<listen>: base of rewritten links */

    /* storage */
    char cache_dir[CONFIG_PATH_MAX];    /* ./var/cache */
    uint64_t cache_max_size;            /* 10G */
    uint64_t cache_min_free;            /* 1G: free space kept on the filesystem */
    char routes_map[CONFIG_PATH_MAX];   /* haproxy/routes.map */

    /* second-level cache (docs/scale-out.md) */
    char l2_dir[CONFIG_PATH_MAX];       /* "": no shared directory tier */
    int64_t l2_lookups_max;             /* 64: L2 reads in flight */
    int64_t l2_lookup_timeout;          /* 500ms: until an L2 tier's head */
    int64_t l2_upload_queue_max;        /* 256: copies to L2 waiting */
    int64_t l2_uploads_max;             /* 4: copies to L2 in flight */

    /* time limits (milliseconds) */
    int64_t client_stall_timeout;       /* 10s */
    int64_t origin_connect_timeout;     /* 5s */
    int64_t origin_stall_timeout;       /* 30s */
    int64_t origin_header_timeout;      /* 10s */
    int64_t cache_write_timeout;        /* 5s */
    int64_t drain_timeout;              /* 30s: SIGTERM lets transfers finish this long */

    /* fills */
    uint64_t fill_buffer_size;          /* 8M: in-memory spool window per fill */
    uint64_t cache_write_lag_max;       /* 32M: unwritten bytes before the writer is detached */
    int64_t integrity_verify;           /* 1: verify artifacts against published digests */
    int64_t integrity_notes;            /* 131072: expected digests kept (digest_notes.h) */
    uint64_t spool_memory_max;          /* 256M: spool memory of all fills together */
    uint64_t spool_memory_prefault;     /* 32M: of it, resident from the start */
    uint64_t heap_prefault;             /* 16M: heap resident from the start, kept */
    uint64_t fill_background_max_size;  /* 1G: finish a fill with no client up to this size */
    uint64_t cache_refetch_max_size;    /* 1G: refetch, paced by the writer, after a lag detach */
    uint64_t object_max_size;           /* 8G: larger origin bodies are passed, not cached */

    /* origin backpressure (issue 4 uses these) */
    int64_t origin_max_in_flight;       /* 512 */
    int64_t origin_max_in_flight_per_origin; /* 256: the adaptive limit's cap */
    int64_t origin_limit_adaptive;      /* 1 */
    int64_t origin_limit_start;         /* 32 */
    int64_t origin_limit_min;           /* 4 */
    int64_t origin_limit_slow_head;     /* 2s (ms) */
    int64_t origin_limit_cooldown;      /* 1s (ms) */
    int64_t origin_queue_max;           /* 1024 */
    int64_t origin_queue_timeout;       /* 30s (ms) */
    int64_t retry_after_min;            /* 1s (ms): clamp of Retry-After */
    int64_t retry_after_max;            /* 10s (ms) */

    /* process */
    int64_t workers;                    /* 4: disk worker threads */
    char worker_cpus[CONFIG_ADDR_MAX];  /* "": CPU list the workers are pinned to */
    int64_t open_file_cache_size;       /* 1000: hot objects kept open */
    uint64_t rewrite_cache_size;        /* 64M: rewritten metadata kept in memory (0 = off) */
    uint64_t rewrite_cache_object_max;  /* 4M: ... per body */
    int64_t inline_hit_max;             /* 12k: hits answered in the SPOP reply */
    int64_t edge_tier_max_size;         /* 64k: hits HAProxy's cache may keep (0 = off) */
    int64_t edge_tier_size;             /* 64M: that cache's shared memory */
    int64_t edge_tier_ttl;              /* 1h, in ms */
    char haproxy_socket_dir[CONFIG_PATH_MAX]; /* var/run: haproxy.sock, pass.sock */

    /* metadata freshness (per route; milliseconds) */
    int64_t metadata_ttl;               /* 5m: served without asking the origin */
    int64_t metadata_stale_while_revalidate; /* 1h: past the TTL, served while one refresh runs */
    int64_t metadata_stale_if_error;    /* 168h (7 days): past the TTL, served when the origin fails */
    int64_t metadata_error_hold;        /* 10s: after an origin failure, stale metadata is served without asking */
    int64_t metadata_negative_ttl;      /* 30s: a 404 for metadata is remembered this long */
    int64_t metadata_honor_no_cache;    /* 0: a client's no-cache/max-age=0 does not bypass the TTL */
    /* the S3 tier (store/s3.h, tier_s3.c); off while s3_bucket is "" */
    char s3_endpoint[CONFIG_URL_MAX];   /* "": https://s3.<region>.amazonaws.com */
    char s3_bucket[64];
    char s3_region[64];                 /* us-east-1 */
    char s3_prefix[256];                /* sluice/ */
    char s3_addressing[16];             /* path | virtual */
    int64_t s3_tls_verify;              /* 1 */
    int64_t s3_connect_timeout;         /* 2s (ms) */
    int64_t s3_read_header_timeout;     /* 1s (ms): the L2 lookup deadline */
    int64_t s3_stall_timeout;           /* 10s (ms) */
    int64_t s3_request_timeout;         /* 60s (ms): each request of an upload */
    uint64_t s3_multipart_threshold;    /* 16M */
    uint64_t s3_part_size;              /* 8M */
    char log_level[16];                 /* info */
    char log_file[CONFIG_PATH_MAX];     /* "": stderr; else appended to */

    /* origins, one per route */
    struct config_origin origins[CONFIG_MAX_ORIGINS];
    int n_origins;

    /* per-route overrides: route_<route>_<setting> */
    struct config_route_override overrides[CONFIG_MAX_OVERRIDES];
    int n_overrides;
};

/*
 * Fill `cfg` from defaults, then the file at `path` (NULL or "" = no file),
 * then `envp` (a NULL-terminated "NAME=value" array, normally `environ`; NULL
 * = none). On error returns -1 and writes a one-line message naming the
 * source, line and setting into err (e.g. "sluice.conf:12: cache_max_size:
 * bad size '10Q'"). Returns 0 on success.
 */
int config_load(struct sluice_config *cfg, const char *path, char *const *envp,
                char *err, size_t errlen);

/*
 * Apply the settings in `text` (file syntax) on top of cfg's current values;
 * `source` names the text in messages ("sluice.conf:3: ..."). config_load
 * uses it for the file; tests and the fuzzer call it directly. 0 or -1.
 */
int config_parse_text(struct sluice_config *cfg, const char *text, const char *source,
                      char *err, size_t errlen);

/* Defaults only (what config_load starts from). */
void config_defaults(struct sluice_config *cfg);

/* Set one setting by name from its textual value (file, env and tests use
 * it). Returns 0, or -1 with a message in err. */
int config_set(struct sluice_config *cfg, const char *name, const char *value,
               char *err, size_t errlen);

/* A per-route setting's value for `route`: its override, else the global
 * value. `setting` must be a per-route integer or duration setting. */
int64_t config_route_int(const struct sluice_config *cfg, const char *setting, const char *route);

/* Origin URL for a route, or NULL when the route has none (off). */
const char *config_origin(const struct sluice_config *cfg, const char *route);

/* origin_<route>_redirect_hosts as set, or NULL when it was not set. */
const char *config_origin_redirect_hosts(const struct sluice_config *cfg, const char *route);

/* The base URL rewritten links point at: public_url, or http://<listen>
 * when it is empty (a wildcard listen address becomes 127.0.0.1). No
 * trailing '/'. */
void config_public_url(const struct sluice_config *cfg, char *out, size_t outlen);

/* Reload: every setting that needs a restart (a listener, cache_dir, the
 * workers...) and differs in `fresh` gets the running value back, with one
 * warning line each. Returns how many were kept. */
int config_keep_restart_settings(struct sluice_config *fresh, const struct sluice_config *running);

/* Write every setting as `name = value` lines (the effective config). */
void config_print(const struct sluice_config *cfg, FILE *out);
/* The same, with secrets redacted (the admin API's /debug/config): the
 * value of every secret setting (config_is_secret), and the user-info of
 * any URL ("https://user:pw@host" -> "https://<redacted>@host"). */
void config_print_redacted(const struct sluice_config *cfg, FILE *out);
/* Does the setting `name` hold credentials? By its name: it contains
 * secret, password, passwd, token or credential, or ends in "_key" (an
 * access key). A new credential setting is named so. */
bool config_is_secret(const char *name);
/* A value as config_print_redacted shows it, into out. */
void config_redact(const char *name, const char *value, char *out, size_t outlen);

/* Write docs/configuration.md's settings table (markdown) from the table. */
void config_print_markdown(FILE *out);

/* Parsers, exported for tests and for other modules. Return 0 or -1. */
int config_parse_duration_ms(const char *s, int64_t *out_ms);
int config_parse_size(const char *s, uint64_t *out_bytes);

#endif
