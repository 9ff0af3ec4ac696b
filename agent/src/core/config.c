/*
 * config.c - the agent's settings: one table, three sources, strict parsing.
 *
 * Every setting is a row of `settings[]` (name, type, default text, where it
 * lives in struct sluice_config, bounds, one line of documentation). Nothing
 * else in this file knows a setting by name: defaults, the file parser, the
 * environment overrides, config_print and the markdown reference
 * (config_print.c) all walk the table, so adding a setting is adding a row.
 * Durations and sizes are parsed by config_units.c.
 *
 * Origins are the exception: their set is open (one `origin_<route>` and one
 * `origin_<route>_redirect_hosts` per route of the map), so they live in
 * cfg->origins[], with their defaults from the ecosystem table (eco/eco.h).
 *
 * Invariants:
 *  - a value is stored only after it parsed and passed its bounds, so a failed
 *    config_set leaves the setting as it was;
 *  - defaults go through the same parser as user input (a bad default is a
 *    programming error and trips an assertion in config_defaults);
 *  - config_print output parses back to the same configuration.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "core/common.h"
#include "core/config_impl.h"
#include "core/log.h"
#include "core/net.h"
#include "core/workers.h"
#include "eco/eco.h"
#include "route/route.h"

#define CONFIG_FILE_MAX (1024 * 1024) /* a config file is small; refuse junk */

static const char *check_address(const char *value);
static const char *check_nonempty(const char *value);
static const char *check_log_level(const char *value);
static const char *check_public_url(const char *value);
static const char *check_cpu_list(const char *value);
static const char *check_s3_endpoint(const char *value);
static const char *check_s3_prefix(const char *value);
static const char *check_s3_addressing(const char *value);
static const char *check_unix_mode(const char *value);
static const char *check_unix_group(const char *value);

#define FIELD(f) offsetof(struct sluice_config, f), sizeof(((struct sluice_config *)0)->f)
#define NO_CHECK NULL
#define MS_HOUR (3600 * 1000LL)
#define KIB 1024LL
#define MIB (1024 * KIB)

/* Bounds: durations and sizes must be > 0 unless 0 has a documented meaning;
 * upper bounds only where a larger value is certainly a mistake. */
const struct setting config_settings[] = {
    { "listen", SET_STRING, "127.0.0.1:8080", FIELD(listen), 0, 0, check_address,
      "Edge address HAProxy binds for clients (host:port or [ipv6]:port).", SF_RESTART },
    { "spop_listen", SET_STRING, "unix:var/run/spop.sock", FIELD(spop_listen), 0, 0, check_address,
      "Address of the agent's SPOP listener (HAProxy's SPOE connects here): unix:PATH, host:port or "
      "[ipv6]:port. A UNIX socket (unix_socket_mode) keeps other local users from asking for verdicts; "
      "over TCP any local process can.", SF_RESTART },
    { "http_listen", SET_STRING, "unix:var/run/http.sock", FIELD(http_listen), 0, 0, check_address,
      "Address of the agent's HTTP listener (hits and fills are sent here): unix:PATH, host:port or "
      "[ipv6]:port. A UNIX socket (unix_socket_mode) keeps other local users from asking for fills "
      "and halves the kernel work of large hits; over TCP any local process can.", SF_RESTART },
    { "admin_listen", SET_STRING, "127.0.0.1:8093", FIELD(admin_listen), 0, 0, check_address,
      "Address of the admin listener: metrics, health, purge, status page (docs/admin-api.md). Keep it on "
      "loopback: it has no authentication.", SF_RESTART },
    { "unix_socket_mode", SET_STRING, "0600", FIELD(unix_socket_mode), 0, 0, check_unix_mode,
      "Permission bits of the agent's UNIX socket files (octal); connecting needs write permission, so "
      "0600 admits the agent's user alone, 0660 its group too (HAProxy running as another user: 0660 and "
      "unix_socket_group). Set before the socket listens.", SF_RESTART },
    { "unix_socket_group", SET_STRING, "", FIELD(unix_socket_group), 0, 0, check_unix_group,
      "Group of the agent's UNIX socket files, a name or number (empty = the agent's own); the agent must "
      "be root or a member of it.", SF_RESTART },
    { "spop_frame_timeout", SET_DURATION, "5s", FIELD(spop_frame_timeout), 1, 0, NO_CHECK,
      "An SPOP frame begun must be whole within this, and a new SPOP connection's HELLO within this of "
      "the connect; else the connection is closed (DISCONNECT status 2).", 0 },
    { "spop_idle_timeout", SET_DURATION, "5m", FIELD(spop_idle_timeout), 0, 0, NO_CHECK,
      "An SPOP connection that sent no frame for this long after its HELLO is closed (0 = never). HAProxy "
      "keeps its own idle between requests: keep this above its `timeout idle` (2.6) and its SPOE "
      "backend's `timeout server` (3.1+).", 0 },
    { "spop_max_connections", SET_INT, "512", FIELD(spop_max_connections), 0, 1000000, NO_CHECK,
      "SPOP connections open at once; one more is answered DISCONNECT status 13 and closed (0 = no cap). "
      "HAProxy needs a few per thread.", 0 },
    { "request_target_max", SET_SIZE, "8k", FIELD(request_target_max), 256, 8192, NO_CHECK,
      "A cacheable request whose path and query together are longer is refused with a 414 before any "
      "work is done on it (the agent's HTTP side takes at most 8k).", 0 },
    { "request_segments_max", SET_INT, "128", FIELD(request_segments_max), 1, 8192, NO_CHECK,
      "A cacheable request whose path has more '/'-separated segments (empty ones included) is refused "
      "with a 414 before any work is done on it.", 0 },
    { "public_url", SET_STRING, "", FIELD(public_url), 0, 0, check_public_url,
      "The edge as clients reach it (`https://cache.example.com`); links rewritten in metadata (npm tarballs, "
      "PyPI files) point here. Empty: `http://` + `listen`. Never taken from a request's Host.", 0 },
    { "cache_dir", SET_STRING, "./var/cache", FIELD(cache_dir), 0, 0, check_nonempty,
      "Directory holding the disk cache (objects/, tmp/, index).", SF_RESTART },
    { "cache_max_size", SET_SIZE, "10G", FIELD(cache_max_size), 1, INT64_MAX, NO_CHECK,
      "Upper bound on the bytes of committed objects; least recently used go first.", 0 },
    { "cache_min_free", SET_SIZE, "1G", FIELD(cache_min_free), 0, INT64_MAX, NO_CHECK,
      "Free space to keep on the cache filesystem (0 = no reserve).", 0 },
    { "l2_dir", SET_STRING, "", FIELD(l2_dir), 0, 0, NO_CHECK,
      "A directory several edges share as a second-level cache (L2), in the disk cache's layout: a miss "
      "looks there before the origin, and every committed object is copied there; never cache_dir itself "
      "(empty = off; docs/scale-out.md).", SF_RESTART },
    { "l2_lookups_max", SET_INT, "64", FIELD(l2_lookups_max), 1, 100000, NO_CHECK,
      "L2 reads in flight, all tiers together; a miss beyond it goes straight to the origin (counted as "
      "`busy`).", 0 },
    { "l2_lookup_timeout", SET_DURATION, "500ms", FIELD(l2_lookup_timeout), 1, 0, NO_CHECK,
      "Longest wait for an L2 tier to say whether it holds an object (its head); past it the same fill goes "
      "to the origin, so a slow or unreachable L2 costs a miss at most this much.", 0 },
    { "l2_upload_queue_max", SET_INT, "256", FIELD(l2_upload_queue_max), 0, 1000000, NO_CHECK,
      "Committed objects waiting to be copied to the L2 tiers (each holds an open descriptor); past it "
      "a copy is dropped and counted (0 = no queue: only l2_uploads_max copies at a time).", 0 },
    { "l2_uploads_max", SET_INT, "4", FIELD(l2_uploads_max), 1, 1000, NO_CHECK,
      "Copies to the L2 tiers in flight, all tiers together.", 0 },
    { "routes_map", SET_STRING, "haproxy/routes.map", FIELD(routes_map), 0, 0, check_nonempty,
      "Route map shared with HAProxy (path prefix -> route).", 0 },
    { "client_stall_timeout", SET_DURATION, "10s", FIELD(client_stall_timeout), 1, 0, NO_CHECK,
      "Drop a client that accepts no byte for this long (slow but moving clients stay).", 0 },
    { "origin_connect_timeout", SET_DURATION, "5s", FIELD(origin_connect_timeout), 1, 0, NO_CHECK,
      "Give up connecting to an origin after this long.", 0 },
    { "origin_stall_timeout", SET_DURATION, "30s", FIELD(origin_stall_timeout), 1, 0, NO_CHECK,
      "Abandon an origin transfer that sends nothing for this long.", 0 },
    { "origin_header_timeout", SET_DURATION, "10s", FIELD(origin_header_timeout), 1, 0, NO_CHECK,
      "Longest wait for an origin's whole header block, from its request being sent (waiting for the first "
      "byte included): past it the fill fails like any origin error (502, or the stale copy where "
      "stale-if-error applies). Bounds an origin that trickles its head, which the stall timeout alone "
      "never ends.", 0 },
    { "drain_timeout", SET_DURATION, "30s", FIELD(drain_timeout), 0, 0, NO_CHECK,
      "On SIGTERM or SIGINT, transfers in flight may finish for this long before they are cut and the "
      "agent exits (0 = cut at once). A second signal cuts at once.", 0 },
    { "cache_write_timeout", SET_DURATION, "5s", FIELD(cache_write_timeout), 1, 0, NO_CHECK,
      "Detach the cache writer when one write takes longer than this.", 0 },
    { "fill_buffer_size", SET_SIZE, "8M", FIELD(fill_buffer_size), 64 * KIB, INT64_MAX, NO_CHECK,
      "In-memory spool window per fill (the origin pauses for clients beyond it).", 0 },
    { "cache_write_lag_max", SET_SIZE, "32M", FIELD(cache_write_lag_max), 0, INT64_MAX, NO_CHECK,
      "Bytes the cache writer, and the integrity hash, may fall behind the origin: past it the writer is "
      "detached (the origin never waits for it) and the origin waits for the hash.", 0 },
    { "spool_memory_max", SET_SIZE, "256M", FIELD(spool_memory_max), 1 * MIB, INT64_MAX, NO_CHECK,
      "Spool memory of all fills together; past it writers that lag are detached and origins paused. "
      "Each fill holds at least one 256 KiB chunk, and its writer trails the stream by a write or "
      "more, so the default holds 256 fills in flight at once (the per-origin cap) without detaching "
      "writers that keep up (docs/backpressure.md). Address space is reserved for all of it at "
      "start; memory beyond spool_memory_prefault becomes resident when a burst first needs it, and "
      "stays with the agent.", 0 },
    { "spool_memory_prefault", SET_SIZE, "32M", FIELD(spool_memory_prefault), 0, INT64_MAX, NO_CHECK,
      "How much of spool_memory_max is made resident before the agent listens (at most all of it; "
      "0: none), so that the first burst of fills does not wait for the kernel to hand out and zero "
      "fresh pages. A later change of spool_memory_max by a reload is served by malloc beyond the "
      "reserve.", 0 },
    { "heap_prefault", SET_SIZE, "16M", FIELD(heap_prefault), 0, INT32_MAX, NO_CHECK,
      "Heap made resident before the agent listens and kept by the allocator after use (glibc's; "
      "other allocators: nothing). The buffers a burst of requests allocates at once (a libcurl "
      "transfer's receive buffer, a connection's input buffer) then reuse warm pages instead of "
      "each waiting for the kernel to hand out and zero a fresh one (docs/performance.md section 15). "
      "Stays in the agent's RSS; 0: the allocator's defaults.", SF_RESTART },
    { "fill_background_max_size", SET_SIZE, "1G", FIELD(fill_background_max_size), 0, INT64_MAX,
      NO_CHECK, "Finish a fill nobody waits for when its size is at most this (0 = never).", 0 },
    { "cache_refetch_max_size", SET_SIZE, "1G", FIELD(cache_refetch_max_size), 0, INT64_MAX, NO_CHECK,
      "When a cache writer was detached for lagging behind a fast origin, fetch the object once more in the "
      "background, paced by the writer, if it is at most this size (0 = never).", 0 },
    { "object_max_size", SET_SIZE, "8G", FIELD(object_max_size), 1, INT64_MAX, NO_CHECK,
      "Larger origin bodies are passed through, not cached.", 0 },
    { "origin_max_in_flight", SET_INT, "512", FIELD(origin_max_in_flight), 1, 100000, NO_CHECK,
      "Origin fetches in flight, all origins together (each holds a socket, a temporary file and up to "
      "fill_buffer_size of spool, within spool_memory_max; docs/backpressure.md).", 0 },
    { "origin_max_in_flight_per_origin", SET_INT, "256", FIELD(origin_max_in_flight_per_origin), 1,
      100000, NO_CHECK, "Origin fetches in flight per origin: the cap of its adaptive limit "
      "(origin_limit_adaptive), or the fixed limit when that is off.", SF_PER_ROUTE },
    { "origin_limit_adaptive", SET_INT, "1", FIELD(origin_limit_adaptive), 0, 1, NO_CHECK,
      "1: an origin's fetches in flight follow an adaptive limit between origin_limit_min and "
      "origin_max_in_flight_per_origin, raised by fast answers while leaders wait, halved on a 429, a 5xx, "
      "an error or a slow answer; 0: the cap is a fixed limit.", SF_PER_ROUTE },
    { "origin_limit_start", SET_INT, "32", FIELD(origin_limit_start), 1, 100000, NO_CHECK,
      "The adaptive limit of an origin at start (and when turned on by a reload); it grows by one per fast "
      "answer while leaders wait, so a burst doubles it per round trip.", SF_PER_ROUTE },
    { "origin_limit_min", SET_INT, "4", FIELD(origin_limit_min), 1, 100000, NO_CHECK,
      "Floor of the adaptive limit: cuts never take it lower (a floor above the cap is the cap).",
      SF_PER_ROUTE },
    { "origin_limit_slow_head", SET_DURATION, "2s", FIELD(origin_limit_slow_head), 1, 0, NO_CHECK,
      "An origin answer whose headers take longer than this, from its slot being granted, is slow: it "
      "halves the adaptive limit; a faster one may raise it.", SF_PER_ROUTE },
    { "origin_limit_cooldown", SET_DURATION, "1s", FIELD(origin_limit_cooldown), 1, 0, NO_CHECK,
      "After a cut the adaptive limit holds for this long (no second cut, no growth), or for the "
      "Retry-After of the 429/503 that cut it when longer (at most 60s): one bad burst halves it once. Ten "
      "of these without a cut and growth doubles per round trip again.", SF_PER_ROUTE },
    { "origin_queue_max", SET_INT, "1024", FIELD(origin_queue_max), 0, 1000000, NO_CHECK,
      "Leaders waiting for an origin slot; past it: 503 + Retry-After (0 = no queue).", SF_PER_ROUTE },
    { "origin_queue_timeout", SET_DURATION, "30s", FIELD(origin_queue_timeout), 1, 0, NO_CHECK,
      "Longest wait for an origin slot before 503 + Retry-After.", SF_PER_ROUTE },
    { "retry_after_min", SET_DURATION, "1s", FIELD(retry_after_min), 1000, MS_HOUR, NO_CHECK,
      "Smallest Retry-After sent with a 503 when the origin queue is full (whole seconds).", 0 },
    { "retry_after_max", SET_DURATION, "10s", FIELD(retry_after_max), 1000, MS_HOUR, NO_CHECK,
      "Largest Retry-After sent with a 503 (pip retries with no upper bound: keep it small).", 0 },
    { "workers", SET_INT, "4", FIELD(workers), 1, 64, NO_CHECK,
      "Worker threads: cache writes, fsync, eviction, the start-up scan, integrity hashing.", SF_RESTART },
    { "worker_cpus", SET_STRING, "", FIELD(worker_cpus), 0, 0, check_cpu_list,
      "CPUs the worker threads run on, as a list such as `1` or `2-3,6` (empty = the CPUs the agent "
      "was started on). With HAProxy and the agent's event loop pinned to one core, put the workers on "
      "another, so hashing and disk writes never take the loop's time.", SF_RESTART },
    { "open_file_cache_size", SET_INT, "1000", FIELD(open_file_cache_size), 0, 1000000, NO_CHECK,
      "Hot objects kept open with their decoded header (0 = off); each is one fd.", 0 },
    { "rewrite_cache_size", SET_SIZE, "64M", FIELD(rewrite_cache_size), 0, INT64_MAX, NO_CHECK,
      "Memory for rewritten metadata bodies (npm packuments, PyPI pages with their links pointed at the edge): "
      "a hit of a stored copy rewritten before sends the kept rewrite, with a Content-Length, instead of "
      "rewriting it again; least recently used go first; 0 = off (every hit rewrites). A new copy, a purge, "
      "an eviction or a reload drops a kept rewrite.", 0 },
    { "rewrite_cache_object_max", SET_SIZE, "4M", FIELD(rewrite_cache_object_max), 1, INT64_MAX, NO_CHECK,
      "Largest rewritten body rewrite_cache_size keeps; larger ones are rewritten on every hit.", 0 },
    { "inline_hit_max", SET_SIZE, "12k", FIELD(inline_hit_max), 0, 16 * KIB, NO_CHECK,
      "Plain GET hits up to this size are answered inside the SPOP reply, HAProxy sends them (0 = off).",
      0 },
    { "edge_tier_max_size", SET_SIZE, "64k", FIELD(edge_tier_max_size), 0, 16 * MIB, NO_CHECK,
      "Hits of immutable objects up to this size may be kept by HAProxy's own cache in front of the agent "
      "(the edge memory tier: no agent round trip; a purge empties it); 0 = off. Read when HAProxy's "
      "configuration is generated (--print-haproxy): restart HAProxy after changing it.", 0 },
    { "edge_tier_size", SET_SIZE, "64M", FIELD(edge_tier_size), MIB, 4095 * MIB, NO_CHECK,
      "Shared memory of the edge memory tier (HAProxy's cache total-max-size, whole MiB).", 0 },
    { "edge_tier_ttl", SET_DURATION, "1h", FIELD(edge_tier_ttl), 1000, 0, NO_CHECK,
      "Longest time an object stays in the edge memory tier before HAProxy asks the agent again "
      "(whole seconds).", 0 },
    { "haproxy_socket_dir", SET_STRING, "var/run", FIELD(haproxy_socket_dir), 0, 0, NO_CHECK,
      "Directory of the sockets HAProxy binds for the agent: its runtime API (haproxy.sock, through "
      "which a purge empties the edge memory tier) and the pass-through relay (pass.sock). Made when "
      "missing.", SF_RESTART },
    { "metadata_ttl", SET_DURATION, "5m", FIELD(metadata_ttl), 0, 0, NO_CHECK,
      "Mutable metadata (packuments, index pages) is served without asking the origin for this long "
      "after it was fetched or revalidated.", SF_PER_ROUTE },
    { "metadata_stale_while_revalidate", SET_DURATION, "1h", FIELD(metadata_stale_while_revalidate), 0, 0,
      NO_CHECK, "Past its TTL, metadata is still served at once for this long while one background "
      "revalidation per key runs (0 = clients wait for the revalidation).", SF_PER_ROUTE },
    { "metadata_stale_if_error", SET_DURATION, "168h", FIELD(metadata_stale_if_error), 0, 0, NO_CHECK,
      "Past its TTL, metadata is served for this long when the origin fails (5xx, refused, timed out, queue "
      "full), with `detail=stale-if-error` in Cache-Status.", SF_PER_ROUTE },
    { "metadata_error_hold", SET_DURATION, "10s", FIELD(metadata_error_hold), 0, 0, NO_CHECK,
      "After the origin failed a fetch (5xx, refused, timed out, cut), stale metadata within "
      "metadata_stale_if_error is served at once, without asking it, for this long; then the next request "
      "tries it again (0 = every request asks).", SF_PER_ROUTE },
    { "metadata_negative_ttl", SET_DURATION, "30s", FIELD(metadata_negative_ttl), 0, 0, NO_CHECK,
      "A 404 for metadata is remembered this long (0 = never); artifacts' 404s never are.", SF_PER_ROUTE },
    { "metadata_honor_no_cache", SET_INT, "0", FIELD(metadata_honor_no_cache), 0, 1, NO_CHECK,
      "1: a client's `Cache-Control: no-cache` or `max-age=0` revalidates metadata first (pip sends it on "
      "every request, hence 0).", SF_PER_ROUTE },
    { "integrity_verify", SET_INT, "1", FIELD(integrity_verify), 0, 1, NO_CHECK,
      "1: artifacts whose ecosystem publishes a digest are verified against it while they are filled "
      "(a mismatch aborts every client's transfer and stores nothing); 0: stored as the origin sent them.",
      SF_PER_ROUTE },
    { "integrity_notes", SET_INT, "131072", FIELD(integrity_notes), 2, 100000000, NO_CHECK,
      "Published artifact digests remembered between the metadata that names them and the artifact's fill "
      "(50 bytes each; the oldest give way; an artifact whose digest was forgotten is stored unverified).",
      SF_RESTART },
    { "s3_endpoint", SET_STRING, "", FIELD(s3_endpoint), 0, 0, check_s3_endpoint,
      "URL of the S3 service the L2 tier uses (`https://s3.eu-west-1.amazonaws.com`, "
      "`http://127.0.0.1:9000` for a local store); empty: `https://s3.<s3_region>.amazonaws.com`. Credentials "
      "come only from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.", SF_RESTART },
    { "s3_bucket", SET_STRING, "", FIELD(s3_bucket), 0, 0, NO_CHECK,
      "Bucket of the S3 tier, shared by the edges as their second-level cache (empty = no S3 tier).", SF_RESTART },
    { "s3_region", SET_STRING, "us-east-1", FIELD(s3_region), 0, 0, NO_CHECK,
      "Region requests are signed for (SigV4).", SF_RESTART },
    { "s3_prefix", SET_STRING, "sluice/", FIELD(s3_prefix), 0, 0, check_s3_prefix,
      "Prepended to every object name in the bucket (names are then the key's SHA-256 in hex); "
      "A-Z a-z 0-9 . _ - / only.", SF_RESTART },
    { "s3_addressing", SET_STRING, "path", FIELD(s3_addressing), 0, 0, check_s3_addressing,
      "`path`: `<endpoint>/<bucket>/<object>`; `virtual`: `<bucket>.<endpoint host>/<object>` (the endpoint "
      "must then name a host, not an address).", SF_RESTART },
    { "s3_tls_verify", SET_INT, "1", FIELD(s3_tls_verify), 0, 1, NO_CHECK,
      "1: verify the S3 endpoint's TLS certificate and name; 0: do not (a test store only).", SF_RESTART },
    { "s3_connect_timeout", SET_DURATION, "2s", FIELD(s3_connect_timeout), 1, 0, NO_CHECK,
      "Give up connecting to the S3 endpoint after this long.", SF_RESTART },
    { "s3_read_header_timeout", SET_DURATION, "1s", FIELD(s3_read_header_timeout), 1, 0, NO_CHECK,
      "An L2 lookup that has no response headers after this long fails (the request goes to the origin): "
      "the most a slow or down store adds to a miss.", SF_RESTART },
    { "s3_stall_timeout", SET_DURATION, "10s", FIELD(s3_stall_timeout), 1, 0, NO_CHECK,
      "An L2 read that receives nothing for this long (while its client takes bytes) fails.", SF_RESTART },
    { "s3_request_timeout", SET_DURATION, "60s", FIELD(s3_request_timeout), 1, 0, NO_CHECK,
      "Each request of an upload to S3 (PutObject, one part, completing) fails after this long; "
      "the upload is then abandoned (and a multipart upload aborted).", SF_RESTART },
    { "s3_multipart_threshold", SET_SIZE, "16M", FIELD(s3_multipart_threshold), 5 * MIB, 5 * 1024 * MIB,
      NO_CHECK, "Objects up to this size are uploaded with one PutObject (read into memory whole); larger "
      "ones as a multipart upload.", SF_RESTART },
    { "s3_part_size", SET_SIZE, "8M", FIELD(s3_part_size), 5 * MIB, 5 * 1024 * MIB, NO_CHECK,
      "Part size of multipart uploads (S3: at least 5M, at most 10000 parts); one part per upload is in "
      "memory at a time.", SF_RESTART },
    { "log_level", SET_STRING, "info", FIELD(log_level), 0, 0, check_log_level,
      "Least important lines written: one of debug, info (one line per fill, docs/logs.md), warn, error.",
      0 },
    { "log_file", SET_STRING, "", FIELD(log_file), 0, 0, NO_CHECK,
      "Where log lines go: empty for stderr, else a file opened for append (created with mode 0640); "
      "an agent that cannot open it does not start. It is opened again by its name when the agent "
      "reloads (SIGHUP), so logrotate can rename it.", 0 },
};

const size_t config_n_settings = sizeof(config_settings) / sizeof(config_settings[0]);


/* ------------------------------------------------------------ error text */


/* Prepend "<prefix>: " to the message already in err. */
static void prefix_err(char *err, size_t errlen, const char *prefix)
{
    if (!err || errlen == 0)
        return;
    char *tmp = sl_strdup(err);
    sl_set_err(err, errlen, "%s: %s", prefix, tmp);
    free(tmp);
}

/* Integers: optional '-', decimal digits, nothing else. */
static int parse_int(const char *s, int64_t *out)
{
    if (*s == '\0' || isspace((unsigned char)*s) || *s == '+')
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* ---------------------------------------------------- string checks */

/* "host:port" or "[ipv6]:port" with port 1..65535 and a plausible host,
 * or "unix:PATH" with a PATH that fits a socket address (a relative one is
 * taken from the agent's working directory, like cache_dir). */
static const char *check_address(const char *value)
{
    static const char *bad = "want host:port, [ipv6]:port or unix:PATH";
    const char *colon;
    if (strncmp(value, NET_UNIX_PREFIX, strlen(NET_UNIX_PREFIX)) == 0) {
        const char *path = value + strlen(NET_UNIX_PREFIX);
        if (path[0] == '\0')
            return "empty UNIX socket path";
        if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return "UNIX socket path too long (at most 107 bytes)";
        return NULL;
    }
    if (value[0] == '[') {
        const char *close = strchr(value, ']');
        if (!close || close[1] != ':')
            return bad;
        char v6[64];
        size_t n = (size_t)(close - value - 1);
        if (n == 0 || n >= sizeof(v6))
            return bad;
        memcpy(v6, value + 1, n);
        v6[n] = '\0';
        struct in6_addr a;
        if (inet_pton(AF_INET6, v6, &a) != 1)
            return "bad IPv6 address";
        colon = close + 1;
    } else {
        colon = strrchr(value, ':');
        if (!colon || colon == value)
            return bad;
        for (const char *p = value; p < colon; p++)
            if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
                return bad;
    }
    const char *port = colon + 1;
    if (*port == '\0' || strlen(port) > 5)
        return "bad port";
    for (const char *p = port; *p; p++)
        if (!isdigit((unsigned char)*p))
            return "bad port";
    long n = strtol(port, NULL, 10);
    if (n < 1 || n > 65535)
        return "port must be 1..65535";
    return NULL;
}

static bool has_control_char(const char *value)
{
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

static const char *check_nonempty(const char *value)
{
    return value[0] ? NULL : "must not be empty";
}

static const char *check_public_url(const char *value)
{
    static char why[160];
    struct origin_url u;
    if (value[0] == '\0')
        return NULL;
    if (origin_url_parse(value, &u, why, sizeof(why)) != 0)
        return why;
    return NULL;
}

void config_public_url(const struct sluice_config *cfg, char *out, size_t outlen)
{
    struct origin_url u;
    if (cfg->public_url[0] && origin_url_parse(cfg->public_url, &u, NULL, 0) == 0) {
        size_t n = origin_url_format_base(&u, out, outlen);
        SL_ASSERT(n > 0);
        return;
    }
    const char *colon = strrchr(cfg->listen, ':');
    if (strncmp(cfg->listen, NET_UNIX_PREFIX, strlen(NET_UNIX_PREFIX)) == 0 || !colon) {
        snprintf(out, outlen, "http://localhost");   /* clients cannot reach a UNIX socket: set public_url */
        return;
    }
    size_t hlen = (size_t)(colon - cfg->listen);
    bool wildcard = hlen == 0 || (hlen == 1 && cfg->listen[0] == '*') ||
                    (hlen == 7 && memcmp(cfg->listen, "0.0.0.0", 7) == 0) ||
                    (hlen == 4 && memcmp(cfg->listen, "[::]", 4) == 0);
    if (wildcard)
        snprintf(out, outlen, "http://127.0.0.1%s", colon);
    else
        snprintf(out, outlen, "http://%s", cfg->listen);
}

static const char *check_log_level(const char *value)
{
    return log_level_parse(value) >= 0 ? NULL : "must be one of debug, info, warn, error";
}

static const char *check_cpu_list(const char *value)
{
    return workers_cpus_parse(value, NULL) == 0 ? NULL
                                                 : "must be a CPU list such as 1 or 0-3,6 (CPUs below 1024)";
}

static const char *check_s3_endpoint(const char *value)
{
    return check_public_url(value);   /* the same shape: scheme://host[:port][/path], http(s) */
}

static const char *check_s3_prefix(const char *value)
{
    for (const char *p = value; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-/", *p))
            return "want only A-Z a-z 0-9 . _ - /";
    return NULL;
}

static const char *check_s3_addressing(const char *value)
{
    return strcmp(value, "path") == 0 || strcmp(value, "virtual") == 0 ? NULL : "must be path or virtual";
}

static const char *check_unix_mode(const char *value)
{
    static char why[128];
    struct net_unix_perm p;
    return net_unix_perm_parse(value, "", &p, why, sizeof(why)) == 0 ? NULL : why;
}

static const char *check_unix_group(const char *value)
{
    static char why[128];
    struct net_unix_perm p;
    return net_unix_perm_parse("0600", value, &p, why, sizeof(why)) == 0 ? NULL : why;
}

/* ------------------------------------------------------------- origins */

static bool route_name_ok(const char *name)
{
    return route_name_valid(name, strlen(name));
}

static struct config_origin *find_origin(struct sluice_config *cfg, const char *route)
{
    for (int i = 0; i < cfg->n_origins; i++)
        if (strcmp(cfg->origins[i].route, route) == 0)
            return &cfg->origins[i];
    return NULL;
}

/* The entry of `route`, made (with no URL: off) when it has none yet. */
static struct config_origin *origin_entry(struct sluice_config *cfg, const char *route, char *err,
                                          size_t errlen)
{
    if (!route_name_ok(route)) {
        sl_set_err(err, errlen, "bad route name '%s' (want [a-z0-9_], at most %d characters)",
                route, CONFIG_ROUTE_NAME_MAX - 1);
        return NULL;
    }
    struct config_origin *o = find_origin(cfg, route);
    if (o)
        return o;
    if (cfg->n_origins >= CONFIG_MAX_ORIGINS) {
        sl_set_err(err, errlen, "too many origins (max %d)", CONFIG_MAX_ORIGINS);
        return NULL;
    }
    o = &cfg->origins[cfg->n_origins++];
    memset(o, 0, sizeof(*o));
    sl_strlcpy(o->route, route, sizeof(o->route));
    return o;
}

static int set_origin(struct sluice_config *cfg, const char *route, const char *url,
                      char *err, size_t errlen)
{
    if (strlen(url) >= CONFIG_URL_MAX) {
        sl_set_err(err, errlen, "URL too long (max %d bytes)", CONFIG_URL_MAX - 1);
        return -1;
    }
    if (url[0]) {
        struct origin_url parsed;
        char why[256];
        if (origin_url_parse(url, &parsed, why, sizeof(why)) != 0) {
            sl_set_err(err, errlen, "%s", why);
            return -1;
        }
    }
    struct config_origin *o = origin_entry(cfg, route, err, errlen);
    if (!o)
        return -1;
    sl_strlcpy(o->url, url, sizeof(o->url));
    return 0;
}

static int set_redirect_hosts(struct sluice_config *cfg, const char *route, const char *hosts,
                              char *err, size_t errlen)
{
    struct route_host parsed[ROUTE_REDIRECT_HOSTS_MAX];
    int n;
    if (strlen(hosts) >= CONFIG_URL_MAX) {
        sl_set_err(err, errlen, "list too long (max %d bytes)", CONFIG_URL_MAX - 1);
        return -1;
    }
    if (route_hosts_parse(hosts, parsed, ROUTE_REDIRECT_HOSTS_MAX, &n, err, errlen) != 0)
        return -1;
    struct config_origin *o = origin_entry(cfg, route, err, errlen);
    if (!o)
        return -1;
    sl_strlcpy(o->redirect_hosts, hosts, sizeof(o->redirect_hosts));
    o->redirect_hosts_set = true;
    return 0;
}

/* "origin_<route>" or "origin_<route>_redirect_hosts" (name without the
 * "origin_" prefix): which one, and the route. */
static int set_origin_setting(struct sluice_config *cfg, const char *name, const char *value,
                              char *err, size_t errlen)
{
    size_t n = strlen(name), slen = strlen(REDIRECT_HOSTS_SUFFIX);
    if (n <= slen || strcmp(name + n - slen, REDIRECT_HOSTS_SUFFIX) != 0)
        return set_origin(cfg, name, value, err, errlen);
    char route[CONFIG_ROUTE_NAME_MAX];
    if (n - slen >= sizeof(route)) {
        sl_set_err(err, errlen, "bad route name (at most %d characters)", CONFIG_ROUTE_NAME_MAX - 1);
        return -1;
    }
    memcpy(route, name, n - slen);
    route[n - slen] = '\0';
    return set_redirect_hosts(cfg, route, value, err, errlen);
}

const char *config_origin(const struct sluice_config *cfg, const char *route)
{
    SL_ASSERT(cfg && route);
    for (int i = 0; i < cfg->n_origins; i++)
        if (strcmp(cfg->origins[i].route, route) == 0)
            return cfg->origins[i].url[0] ? cfg->origins[i].url : NULL;
    return NULL;
}

const char *config_origin_redirect_hosts(const struct sluice_config *cfg, const char *route)
{
    SL_ASSERT(cfg && route);
    for (int i = 0; i < cfg->n_origins; i++)
        if (strcmp(cfg->origins[i].route, route) == 0)
            return cfg->origins[i].redirect_hosts_set ? cfg->origins[i].redirect_hosts : NULL;
    return NULL;
}

/* ------------------------------------------------------------ setting */

const struct setting *config_find_setting(const char *name)
{
    for (size_t i = 0; i < config_n_settings; i++)
        if (strcmp(config_settings[i].name, name) == 0)
            return &config_settings[i];
    return NULL;
}

static int check_bounds(const struct setting *s, int64_t v, char *err, size_t errlen)
{
    if (v < s->min) {
        sl_set_err(err, errlen, "must be at least %lld%s", (long long)s->min,
                s->type == SET_DURATION ? " ms" : s->type == SET_SIZE ? " bytes" : "");
        return -1;
    }
    if (s->max > 0 && v > s->max) {
        sl_set_err(err, errlen, "must be at most %lld", (long long)s->max);
        return -1;
    }
    return 0;
}

/* Parse `value` for setting `s` and store it; err gets only the reason. */
static int apply_setting(struct sluice_config *cfg, const struct setting *s, const char *value,
                         char *err, size_t errlen)
{
    void *field = (char *)cfg + s->offset;
    switch (s->type) {
    case SET_STRING: {
        const char *why = has_control_char(value) ? "contains a control character"
                          : s->check                ? s->check(value)
                                                    : NULL;
        if (why) {
            sl_set_err(err, errlen, "bad value '%s': %s", value, why);
            return -1;
        }
        if (strlen(value) >= s->size) {
            sl_set_err(err, errlen, "value too long (max %zu bytes)", s->size - 1);
            return -1;
        }
        sl_strlcpy(field, value, s->size);
        return 0;
    }
    case SET_DURATION: {
        int64_t ms;
        enum num_err e = units_parse_duration(value, &ms);
        if (e != NUM_OK) {
            sl_set_err(err, errlen, "bad duration '%s': %s (e.g. 500ms, 3s, 2m, 1h)", value,
                    units_err_text(e));
            return -1;
        }
        if (check_bounds(s, ms, err, errlen) != 0)
            return -1;
        *(int64_t *)field = ms;
        return 0;
    }
    case SET_SIZE: {
        uint64_t bytes;
        enum num_err e = units_parse_size(value, &bytes);
        if (e == NUM_OK && bytes > INT64_MAX)
            e = NUM_OVERFLOW;
        if (e != NUM_OK) {
            sl_set_err(err, errlen, "bad size '%s': %s (e.g. 512, 64K, 8M, 10G, 1T)", value,
                    units_err_text(e));
            return -1;
        }
        if (check_bounds(s, (int64_t)bytes, err, errlen) != 0)
            return -1;
        *(uint64_t *)field = bytes;
        return 0;
    }
    case SET_INT: {
        int64_t v;
        if (parse_int(value, &v) != 0) {
            sl_set_err(err, errlen, "bad integer '%s'", value);
            return -1;
        }
        if (check_bounds(s, v, err, errlen) != 0)
            return -1;
        *(int64_t *)field = v;
        return 0;
    }
    }
    SL_ASSERT(!"unknown setting type");
    return -1;
}

/* ------------------------------------------------ per-route overrides */

/*
 * "route_<route>_<setting>": route names may contain '_', so the setting is
 * found as a suffix among the per-route settings.
 */
static const struct setting *split_route_override(const char *name, char *route, size_t routelen)
{
    size_t plen = strlen(ROUTE_PREFIX);
    if (strncmp(name, ROUTE_PREFIX, plen) != 0)
        return NULL;
    const char *rest = name + plen;
    size_t rlen = strlen(rest);
    for (size_t i = 0; i < config_n_settings; i++) {
        const struct setting *st = &config_settings[i];
        size_t slen = strlen(st->name);
        if (!(st->flags & SF_PER_ROUTE) || rlen < slen + 2 || strcmp(rest + rlen - slen, st->name) != 0 ||
            rest[rlen - slen - 1] != '_' || rlen - slen - 1 >= routelen)
            continue;
        memcpy(route, rest, rlen - slen - 1);
        route[rlen - slen - 1] = '\0';
        if (route_name_ok(route))
            return st;
    }
    return NULL;
}

static int set_route_override(struct sluice_config *cfg, const char *name, const char *value,
                              char *err, size_t errlen)
{
    char route[CONFIG_ROUTE_NAME_MAX];
    const struct setting *st = split_route_override(name, route, sizeof(route));
    if (!st) {
        sl_set_err(err, errlen, "unknown setting (per-route form: route_<route>_<setting>)");
        return -1;
    }
    /* Parse into a scratch config so the same checks and bounds apply. */
    struct sluice_config *scratch = sl_calloc(1, sizeof(*scratch));
    int rc = apply_setting(scratch, st, value, err, errlen);
    int64_t v = *(int64_t *)((char *)scratch + st->offset);
    free(scratch);
    if (rc != 0)
        return -1;
    for (int i = 0; i < cfg->n_overrides; i++) {
        struct config_route_override *o = &cfg->overrides[i];
        if (o->setting == st->name && strcmp(o->route, route) == 0) {
            o->value = v;
            return 0;
        }
    }
    if (cfg->n_overrides >= CONFIG_MAX_OVERRIDES) {
        sl_set_err(err, errlen, "too many per-route overrides (max %d)", CONFIG_MAX_OVERRIDES);
        return -1;
    }
    struct config_route_override *o = &cfg->overrides[cfg->n_overrides++];
    sl_strlcpy(o->route, route, sizeof(o->route));
    o->setting = st->name;
    o->value = v;
    return 0;
}

int64_t config_route_int(const struct sluice_config *cfg, const char *setting, const char *route)
{
    const struct setting *st = config_find_setting(setting);
    SL_ASSERT(st && (st->flags & SF_PER_ROUTE) && (st->type == SET_INT || st->type == SET_DURATION));
    for (int i = 0; i < cfg->n_overrides; i++)
        if (cfg->overrides[i].setting == st->name && strcmp(cfg->overrides[i].route, route) == 0)
            return cfg->overrides[i].value;
    return *(const int64_t *)((const char *)cfg + st->offset);
}

/* Like config_set, but the message in err carries no "name: " prefix. */
static int set_by_name(struct sluice_config *cfg, const char *name, const char *value,
                       char *err, size_t errlen)
{
    const struct setting *s = config_find_setting(name);
    if (s)
        return apply_setting(cfg, s, value, err, errlen);
    if (strncmp(name, ORIGIN_PREFIX, strlen(ORIGIN_PREFIX)) == 0)
        return set_origin_setting(cfg, name + strlen(ORIGIN_PREFIX), value, err, errlen);
    if (strncmp(name, ROUTE_PREFIX, strlen(ROUTE_PREFIX)) == 0)
        return set_route_override(cfg, name, value, err, errlen);
    sl_set_err(err, errlen, "unknown setting");
    return -1;
}

int config_set(struct sluice_config *cfg, const char *name, const char *value,
               char *err, size_t errlen)
{
    SL_ASSERT(cfg && name && value);
    if (set_by_name(cfg, name, value, err, errlen) == 0)
        return 0;
    prefix_err(err, errlen, name);
    return -1;
}

void config_defaults(struct sluice_config *cfg)
{
    SL_ASSERT(cfg);
    memset(cfg, 0, sizeof(*cfg));
    char err[256];
    for (size_t i = 0; i < config_n_settings; i++) {
        int rc = apply_setting(cfg, &config_settings[i], config_settings[i].def, err, sizeof(err));
        SL_ASSERT(rc == 0);
    }
    for (size_t i = 0; i < eco_count(); i++) {
        const struct eco *e = eco_at(i);
        int rc = set_origin(cfg, e->name, e->default_origin ? e->default_origin : "", err, sizeof(err));
        SL_ASSERT(rc == 0);
    }
}

/* ----------------------------------------------------------- the file */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/*
 * Split the value part of a line (after '='): a double-quoted value runs to
 * the next '"' (no escapes, '#' inside is literal) and may be followed only
 * by a comment; an unquoted value ends at '#'. Returns the value or NULL.
 */
static char *line_value(char *v, char *err, size_t errlen)
{
    v = trim(v);
    if (*v != '"') {
        char *hash = strchr(v, '#');
        if (hash)
            *hash = '\0';
        return trim(v);
    }
    char *close = strchr(v + 1, '"');
    if (!close) {
        sl_set_err(err, errlen, "unterminated quote");
        return NULL;
    }
    *close = '\0';
    char *after = trim(close + 1);
    if (*after && *after != '#') {
        sl_set_err(err, errlen, "unexpected text after closing quote");
        return NULL;
    }
    return v + 1;
}

/* Parse one line (modified in place). Blank and comment lines are fine. */
static int parse_line(struct sluice_config *cfg, char *line, char *err, size_t errlen)
{
    char *s = trim(line);
    if (*s == '\0' || *s == '#')
        return 0;
    char *eq = strchr(s, '=');
    if (!eq) {
        sl_set_err(err, errlen, "expected 'name = value'");
        return -1;
    }
    *eq = '\0';
    char *name = trim(s);
    if (*name == '\0') {
        sl_set_err(err, errlen, "missing setting name");
        return -1;
    }
    char *value = line_value(eq + 1, err, errlen);
    if (!value) {
        prefix_err(err, errlen, name);
        return -1;
    }
    return config_set(cfg, name, value, err, errlen);
}

int config_parse_text(struct sluice_config *cfg, const char *text, const char *source,
                      char *err, size_t errlen)
{
    SL_ASSERT(cfg && text && source);
    char *copy = sl_strdup(text);
    char *line = copy;
    int lineno = 0, rc = 0;
    while (line && rc == 0) {
        lineno++;
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (parse_line(cfg, line, err, errlen) != 0) {
            char where[CONFIG_PATH_MAX + 32];
            snprintf(where, sizeof(where), "%s:%d", source, lineno);
            prefix_err(err, errlen, where);
            rc = -1;
        }
        line = next;
    }
    free(copy);
    return rc;
}

/* ---------------------------------------------------- the environment */

/*
 * "SLUICE_CACHE_MAX_SIZE=10G" -> name "cache_max_size". Only upper-case names
 * map to settings; anything else under the prefix belongs to someone else
 * (SLUICE_FAULT, HAProxy's SLUICE_SPOP_ADDR, ...) and is ignored.
 */
static bool env_setting_name(const char *entry, char *name, size_t namelen, const char **value)
{
    if (strncmp(entry, ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
        return false;
    const char *p = entry + strlen(ENV_PREFIX);
    const char *eq = strchr(p, '=');
    if (!eq || eq == p || (size_t)(eq - p) >= namelen)
        return false;
    size_t n = 0;
    for (; p < eq; p++) {
        if (!isupper((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_')
            return false;
        name[n++] = (char)tolower((unsigned char)*p);
    }
    name[n] = '\0';
    *value = eq + 1;
    return true;
}

static bool is_setting_name(const char *name)
{
    char route[CONFIG_ROUTE_NAME_MAX];
    if (config_find_setting(name) || split_route_override(name, route, sizeof(route)))
        return true;
    size_t plen = strlen(ORIGIN_PREFIX);
    return strncmp(name, ORIGIN_PREFIX, plen) == 0 && route_name_ok(name + plen);
}

static int apply_env(struct sluice_config *cfg, char *const *envp, char *err, size_t errlen)
{
    for (char *const *e = envp; *e; e++) {
        char name[128];
        const char *value;
        if (!env_setting_name(*e, name, sizeof(name), &value))
            continue;
        if (!is_setting_name(name)) {
            log_debug("config: ignoring environment variable %.*s", (int)(value - *e - 1), *e);
            continue;
        }
        if (set_by_name(cfg, name, value, err, errlen) != 0) {
            char where[160];
            snprintf(where, sizeof(where), "environment: %.*s", (int)(value - *e - 1), *e);
            prefix_err(err, errlen, where);
            return -1;
        }
    }
    return 0;
}

int config_load(struct sluice_config *cfg, const char *path, char *const *envp,
                char *err, size_t errlen)
{
    SL_ASSERT(cfg);
    config_defaults(cfg);
    if (path && path[0]) {
        char *text = sl_read_text_file(path, CONFIG_FILE_MAX, err, errlen);
        if (!text)
            return -1;
        int rc = config_parse_text(cfg, text, path, err, errlen);
        free(text);
        if (rc != 0)
            return -1;
    }
    if (envp && apply_env(cfg, envp, err, errlen) != 0)
        return -1;
    return 0;
}

