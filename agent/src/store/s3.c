/*
 * s3.c - URLs, query strings, metadata and XML of the S3 tier (see s3.h).
 *
 * The decoders read what an object store sent, and a store is shared by
 * every edge (and may hold anything anyone put in the bucket): they are
 * total, bounded and strict, and the metadata goes through the same
 * objfile decoder an L1 header does (CRC included).
 */
#include "store/s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "http/httpx.h"
#include "route/route.h"

#define META_FRAME 16   /* magic, length, CRC before the text (objfile.h) */

bool s3_settings_from_config(const struct sluice_config *cfg, struct s3_settings *s, char *endpoint, size_t len)
{
    if (!cfg->s3_bucket[0])
        return false;
    if (cfg->s3_endpoint[0])
        sl_strlcpy(endpoint, cfg->s3_endpoint, len);
    else
        snprintf(endpoint, len, "https://s3.%s.amazonaws.com", cfg->s3_region);
    *s = (struct s3_settings){
        .endpoint = endpoint,
        .bucket = cfg->s3_bucket,
        .region = cfg->s3_region,
        .prefix = cfg->s3_prefix,
        .virtual_host = strcmp(cfg->s3_addressing, "virtual") == 0,
        .tls_verify = cfg->s3_tls_verify != 0,
        .connect_timeout_ms = cfg->s3_connect_timeout,
        .header_timeout_ms = cfg->s3_read_header_timeout,
        .stall_timeout_ms = cfg->s3_stall_timeout,
        .request_timeout_ms = cfg->s3_request_timeout,
        .multipart_threshold = cfg->s3_multipart_threshold,
        .part_size = cfg->s3_part_size,
        .access_key = getenv("AWS_ACCESS_KEY_ID"),
        .secret_key = getenv("AWS_SECRET_ACCESS_KEY"),
        .session_token = getenv("AWS_SESSION_TOKEN"),
    };
    return true;
}

static bool prefix_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/';
}

/* A DNS-compatible bucket name (what virtual-host addressing needs, and
 * what path-style puts in the path unescaped): 3..63 of [a-z0-9.-]. */
static bool bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return false;
    for (const char *p = b; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
            return false;
    return true;
}

const char *s3_settings_check(const struct s3_settings *s)
{
    static char why[200];
    struct origin_url u;
    if (!s->bucket || !bucket_ok(s->bucket))
        return "s3_bucket: want 3 to 63 of a-z, 0-9, '.', '-'";
    if (!s->endpoint || origin_url_parse(s->endpoint, &u, why, sizeof(why)) != 0)
        return s->endpoint ? why : "s3_endpoint: not set";
    if (s->virtual_host && origin_url_host_is_ip(&u))
        return "s3_addressing: virtual needs an endpoint host name, not an address";
    if (!s->region || !s->region[0])
        return "s3_region: not set";
    for (const char *p = s->prefix ? s->prefix : ""; *p; p++)
        if (!prefix_char_ok(*p))
            return "s3_prefix: want only A-Z a-z 0-9 . _ - /";
    if (s->part_size < S3_MIN_PART_SIZE)
        return "s3_part_size: S3 wants parts of at least 5M";
    if (s->multipart_threshold < s->part_size)
        return "s3_multipart_threshold: must be at least s3_part_size";
    return NULL;
}

size_t s3_object_url(const struct s3_settings *s, const uint8_t hash[KEY_HASH_LEN], const char *query,
                     char *out, size_t outlen)
{
    struct origin_url u;
    char base[S3_URL_MAX], hex[KEY_HEX_LEN + 1];
    if (origin_url_parse(s->endpoint, &u, NULL, 0) != 0)
        return 0;
    if (s->virtual_host) {
        char host[sizeof(u.host)];
        if ((size_t)snprintf(host, sizeof(host), "%s.%s", s->bucket, u.host) >= sizeof(host))
            return 0;
        memcpy(u.host, host, sizeof(host));
    }
    if (origin_url_format_base(&u, base, sizeof(base)) == 0)
        return 0;
    key_hex(hash, hex);
    bool q = query && query[0];
    int n = snprintf(out, outlen, "%s/%s%s%s%s%s%s", base, s->virtual_host ? "" : s->bucket,
                     s->virtual_host ? "" : "/", s->prefix ? s->prefix : "", hex, q ? "?" : "", q ? query : "");
    return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
}

/* RFC 3986 percent-encoding (unreserved kept), as SigV4 canonicalises. */
static size_t pct_encode(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    *p == '-' || *p == '_' || *p == '.' || *p == '~';
        if (o + (keep ? 1 : 3) >= outlen)
            return 0;
        if (keep) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return o;
}

size_t s3_query_part(int part, const char *upload_id, char *out, size_t outlen)
{
    char id[1024];
    if (part < 1 || part > S3_MAX_PARTS || (upload_id[0] && pct_encode(upload_id, id, sizeof(id)) == 0))
        return 0;
    int n = snprintf(out, outlen, "partNumber=%d&uploadId=%s", part, upload_id[0] ? id : "");
    return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
}

size_t s3_query_upload(const char *upload_id, char *out, size_t outlen)
{
    char id[1024];
    if (upload_id[0] && pct_encode(upload_id, id, sizeof(id)) == 0)
        return 0;
    int n = snprintf(out, outlen, "uploadId=%s", upload_id[0] ? id : "");
    return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
}

/* --------------------------------------------------------------- metadata */

size_t s3_meta_encode(const uint8_t block[OBJ_HEADER_SIZE], char *out, size_t outlen)
{
    uint32_t n = (uint32_t)block[8] | (uint32_t)block[9] << 8 | (uint32_t)block[10] << 16 |
                 (uint32_t)block[11] << 24;
    if (n > OBJ_HEADER_SIZE - META_FRAME)
        return 0;
    size_t raw = META_FRAME + n, enc = 4 * ((raw + 2) / 3);
    if (enc > S3_META_MAX || enc >= outlen)
        return 0;
    int w = EVP_EncodeBlock((unsigned char *)out, block, (int)raw);
    SL_ASSERT(w == (int)enc);
    return enc;
}

static bool b64_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Standard base64 with its padding and nothing else (EVP_DecodeBlock
 * alone would skip blanks around it). */
static bool b64_shape_ok(const char *v, size_t len)
{
    if (len == 0 || len % 4 != 0)
        return false;
    size_t pad = v[len - 1] == '=' ? (v[len - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < len - pad; i++)
        if (!b64_char_ok(v[i]))
            return false;
    return true;
}

int s3_meta_decode(const char *value, size_t len, struct obj_meta *meta, char *err, size_t errlen)
{
    memset(meta, 0, sizeof(*meta));
    if (len > 4 * ((OBJ_HEADER_SIZE + 2) / 3) || !b64_shape_ok(value, len)) {
        sl_set_err(err, errlen, "metadata is not base64 of a header block");
        return -1;
    }
    uint8_t *block = sl_calloc(1, OBJ_HEADER_SIZE + 3);
    char *text = sl_strndup(value, len);   /* EVP_DecodeBlock wants no bound but its count */
    int got = EVP_DecodeBlock(block, (const unsigned char *)text, (int)len);
    free(text);
    int rc = -1;
    if (got < META_FRAME)
        sl_set_err(err, errlen, "metadata too short");
    else
        rc = obj_header_decode(block, OBJ_HEADER_SIZE, meta, err, errlen);
    free(block);
    return rc;
}

/* --------------------------------------------------------------- headers */

bool s3_header_match(const char *line, size_t len, const char *name, const char **v, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return false;
    const char *p = line + n + 1, *end = line + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *v = p;
    *vlen = (size_t)(end - p);
    return true;
}

int64_t s3_parse_length(const char *v, size_t len)
{
    return httpx_parse_digits(v, len);
}

/* -------------------------------------------------------------------- XML */

static void xml_escape_into(struct sl_buf *b, const char *s)
{
    for (; *s; s++) {
        const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '"' ? "&quot;" : NULL;
        if (e)
            sl_buf_append_str(b, e);
        else
            sl_buf_append(b, s, 1);
    }
}

char *s3_complete_xml(char *const *etags, int n)
{
    struct sl_buf b = { 0 };
    sl_buf_append_str(&b, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (int i = 0; i < n; i++) {
        char num[32];
        snprintf(num, sizeof(num), "%d", i + 1);
        sl_buf_append_str(&b, "<Part><PartNumber>");
        sl_buf_append_str(&b, num);
        sl_buf_append_str(&b, "</PartNumber><ETag>");
        xml_escape_into(&b, etags[i]);
        sl_buf_append_str(&b, "</ETag></Part>");
    }
    sl_buf_append_str(&b, "</CompleteMultipartUpload>");
    return (char *)b.data;
}

static const char *find_mem(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

/* One entity at s (after '&'), into *c; its length with the ';', or 0. */
static size_t xml_entity(const char *s, size_t avail, char *c)
{
    static const struct { const char *name; char c; } ents[] = {
        { "quot;", '"' }, { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "apos;", '\'' },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(ents); i++) {
        size_t n = strlen(ents[i].name);
        if (n <= avail && memcmp(s, ents[i].name, n) == 0) {
            *c = ents[i].c;
            return n + 1;
        }
    }
    return 0;
}

int s3_xml_value(const char *xml, size_t len, const char *tag, char *out, size_t outlen)
{
    char open[64], close[64];
    if (!xml || outlen == 0 || (size_t)snprintf(open, sizeof(open), "<%s>", tag) >= sizeof(open))
        return -1;
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = find_mem(xml, len, open);
    if (!a)
        return -1;
    a += strlen(open);
    const char *b = find_mem(a, len - (size_t)(a - xml), close);
    if (!b)
        return -1;
    size_t o = 0;
    for (const char *p = a; p < b;) {
        char c = *p;
        size_t step = 1;
        if (c == '&' && (step = xml_entity(p + 1, (size_t)(b - p - 1), &c)) == 0)
            return -1;
        if (c == '<' && step == 1)
            return -1;   /* markup inside: not a plain value */
        if (o + 1 >= outlen)
            return -1;
        out[o++] = c;
        p += step;
    }
    out[o] = '\0';
    return (int)o;
}

bool s3_xml_is_error(const char *xml, size_t len)
{
    return xml && find_mem(xml, len, "<Error>") != NULL;
}
