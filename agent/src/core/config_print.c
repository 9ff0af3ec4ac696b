/*
 * config_print.c - the configuration as text: the effective settings
 * (`sluice --print-config`, which parses back to the same configuration)
 * and the settings table of docs/configuration.md (`--print-config-doc`),
 * both from the one table in config.c; and the settings a reload may not
 * change (config_keep_restart_settings).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/config_impl.h"
#include "core/log.h"
#include "eco/eco.h"

static void format_setting(const struct sluice_config *cfg, const struct setting *s,
                           char *out, size_t outlen)
{
    const void *field = (const char *)cfg + s->offset;
    switch (s->type) {
    case SET_STRING:
        snprintf(out, outlen, "%s", (const char *)field);
        return;
    case SET_DURATION:
        units_format_duration(*(const int64_t *)field, out, outlen);
        return;
    case SET_SIZE:
        units_format_size(*(const uint64_t *)field, out, outlen);
        return;
    case SET_INT:
        snprintf(out, outlen, "%lld", (long long)*(const int64_t *)field);
        return;
    }
}

int config_keep_restart_settings(struct sluice_config *fresh, const struct sluice_config *running)
{
    SL_ASSERT(fresh && running);
    int kept = 0;
    for (size_t i = 0; i < config_n_settings; i++) {
        const struct setting *s = &config_settings[i];
        char was[CONFIG_PATH_MAX], now[CONFIG_PATH_MAX];
        if (!(s->flags & SF_RESTART))
            continue;
        format_setting(running, s, was, sizeof(was));
        format_setting(fresh, s, now, sizeof(now));
        if (strcmp(was, now) == 0)
            continue;
        log_warn("reload: %s changed from '%s' to '%s' but needs a restart; keeping '%s' until then", s->name,
                 was, now, was);
        memcpy((char *)fresh + s->offset, (const char *)running + s->offset, s->size);
        kept++;
    }
    return kept;
}

/* Quote a value when the file syntax would otherwise change it. */
static void print_value_line(FILE *out, const char *name, const char *value)
{
    size_t n = strlen(value);
    bool quote = n == 0 || strchr(value, '#') || value[0] == '"' ||
                 isspace((unsigned char)value[0]) || isspace((unsigned char)value[n - 1]);
    if (quote)
        fprintf(out, "%s = \"%s\"\n", name, value);
    else
        fprintf(out, "%s = %s\n", name, value);
}

#define REDACTED "<redacted>"

bool config_is_secret(const char *name)
{
    static const char *const words[] = { "secret", "password", "passwd", "token", "credential" };
    for (size_t i = 0; i < SL_ARRAY_LEN(words); i++)
        if (strstr(name, words[i]))
            return true;
    size_t n = strlen(name);
    return n >= 4 && strcmp(name + n - 4, "_key") == 0;
}

void config_redact(const char *name, const char *value, char *out, size_t outlen)
{
    if (config_is_secret(name) && value[0]) {
        snprintf(out, outlen, REDACTED);
        return;
    }
    const char *auth = strstr(value, "://");
    auth = auth ? auth + 3 : NULL;
    const char *at = auth ? strchr(auth, '@') : NULL;
    const char *end = auth ? auth + strcspn(auth, "/?#") : NULL;
    if (at && at < end)
        snprintf(out, outlen, "%.*s" REDACTED "%s", (int)(auth - value), value, at);
    else
        snprintf(out, outlen, "%s", value);
}

/* A line of the configuration, redacted when asked. */
static void print_line(FILE *out, const char *name, const char *value, bool redact)
{
    char shown[CONFIG_URL_MAX + 32];
    if (redact) {
        config_redact(name, value, shown, sizeof(shown));
        value = shown;
    }
    print_value_line(out, name, value);
}

static void print_config(const struct sluice_config *cfg, FILE *out, bool redact)
{
    SL_ASSERT(cfg && out);
    char value[CONFIG_URL_MAX + 16];
    for (size_t i = 0; i < config_n_settings; i++) {
        format_setting(cfg, &config_settings[i], value, sizeof(value));
        print_line(out, config_settings[i].name, value, redact);
    }
    for (int i = 0; i < cfg->n_origins; i++) {
        const struct config_origin *o = &cfg->origins[i];
        char name[sizeof(ORIGIN_PREFIX) + CONFIG_ROUTE_NAME_MAX + sizeof(REDIRECT_HOSTS_SUFFIX)];
        snprintf(name, sizeof(name), ORIGIN_PREFIX "%s", o->route);
        print_line(out, name, o->url, redact);
        if (o->redirect_hosts_set) {
            snprintf(name, sizeof(name), ORIGIN_PREFIX "%s" REDIRECT_HOSTS_SUFFIX, o->route);
            print_line(out, name, o->redirect_hosts, redact);
        }
    }
    struct sluice_config *scratch = sl_calloc(1, sizeof(*scratch));
    for (int i = 0; i < cfg->n_overrides; i++) {
        const struct config_route_override *o = &cfg->overrides[i];
        const struct setting *st = config_find_setting(o->setting);
        char name[sizeof(ROUTE_PREFIX) + CONFIG_ROUTE_NAME_MAX + 64];
        *(int64_t *)((char *)scratch + st->offset) = o->value;
        format_setting(scratch, st, value, sizeof(value));
        snprintf(name, sizeof(name), ROUTE_PREFIX "%s_%s", o->route, o->setting);
        print_line(out, name, value, redact);
    }
    free(scratch);
}

void config_print(const struct sluice_config *cfg, FILE *out)
{
    print_config(cfg, out, false);
}

void config_print_redacted(const struct sluice_config *cfg, FILE *out)
{
    print_config(cfg, out, true);
}

static void print_env_name(FILE *out, const char *name)
{
    fputs(ENV_PREFIX, out);
    for (const char *p = name; *p; p++)
        fputc(toupper((unsigned char)*p), out);
}

void config_print_markdown(FILE *out)
{
    SL_ASSERT(out);
    fputs("| Setting | Environment variable | Default | Description |\n", out);
    fputs("|---|---|---|---|\n", out);
    for (size_t i = 0; i < config_n_settings; i++) {
        const struct setting *s = &config_settings[i];
        fprintf(out, "| `%s` | `", s->name);
        print_env_name(out, s->name);
        fprintf(out, "` | `%s` | %s%s%s |\n", s->def, s->doc, (s->flags & SF_PER_ROUTE) ? " Per route." : "",
                (s->flags & SF_RESTART) ? " Needs a restart (a reload keeps the running value)." : "");
    }
    for (size_t i = 0; i < eco_count(); i++) {
        const struct eco *e = eco_at(i);
        char name[sizeof(ORIGIN_PREFIX) + CONFIG_ROUTE_NAME_MAX];
        snprintf(name, sizeof(name), ORIGIN_PREFIX "%s", e->name);
        fprintf(out, "| `%s` | `", name);
        print_env_name(out, name);
        if (e->default_origin)
            fprintf(out, "` | `%s` | Origin URL of the `%s` route (empty = route off). |\n",
                    e->default_origin, e->name);
        else
            fprintf(out, "` | (off) | Origin URL of the `%s` route; off until set. |\n", e->name);
    }
    fputs("| `origin_<route>` | `SLUICE_ORIGIN_<ROUTE>` | (off) | Origin URL of any other route "
          "of the map (`http://` or `https://` host, optional port and base path). |\n", out);
    fputs("| `origin_<route>_redirect_hosts` | `SLUICE_ORIGIN_<ROUTE>_REDIRECT_HOSTS` | (none) | Hosts "
          "(`name[:port]`, comma separated) the route's origin may redirect to, besides itself, e.g. a "
          "registry's CDN. Redirects elsewhere, over more than 5 hops, from https to http, or to a loopback, "
          "link-local or private address (unless the origin is one) are refused with a 502. |\n", out);
    fputs("| `route_<route>_<setting>` | `SLUICE_ROUTE_<ROUTE>_<SETTING>` | (global value) | Override of a "
          "setting marked *Per route* for one route, e.g. `route_go_origin_queue_timeout = 2m`. |\n", out);
}
