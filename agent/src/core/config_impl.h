/*
 * config_impl.h - the settings table and the helpers the three config
 * files share (config.c: the table, setting and loading; config_units.c:
 * durations and sizes; config_print.c: the effective configuration and the
 * docs table). Nothing outside core/config*.c includes it.
 */
#ifndef SLUICE_CONFIG_IMPL_H
#define SLUICE_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

#define ENV_PREFIX "SLUICE_"
#define ORIGIN_PREFIX "origin_"
#define REDIRECT_HOSTS_SUFFIX "_redirect_hosts"
#define ROUTE_PREFIX "route_"
enum setting_type { SET_STRING, SET_DURATION, SET_SIZE, SET_INT };

/* Setting flags. */
#define SF_PER_ROUTE 1u     /* may be overridden with route_<route>_<name> */
#define SF_RESTART 2u       /* read once at start: a reload keeps the running value */

/* Extra checks for string settings; return NULL when fine, else a reason. */
typedef const char *(*string_check_fn)(const char *value);

struct setting {
    const char *name;
    enum setting_type type;
    const char *def;        /* default, as text: parsed like user input */
    size_t offset;          /* into struct sluice_config */
    size_t size;            /* buffer size for strings */
    int64_t min, max;       /* bounds for durations (ms), sizes and ints */
    string_check_fn check;  /* strings only; may be NULL */
    const char *doc;
    unsigned flags;         /* SF_* */
};


/* The table (config.c), in the order of docs/configuration.md. */
extern const struct setting config_settings[];
extern const size_t config_n_settings;
const struct setting *config_find_setting(const char *name);

/* config_units.c: why a number did not parse. */
enum num_err { NUM_OK, NUM_EMPTY, NUM_NEGATIVE, NUM_GARBAGE, NUM_OVERFLOW, NUM_INEXACT };
enum num_err units_parse_duration(const char *s, int64_t *out_ms);
enum num_err units_parse_size(const char *s, uint64_t *out);
const char *units_err_text(enum num_err e);
/* The largest unit that represents the value exactly ("1h", "90s", "8M"). */
void units_format_duration(int64_t ms, char *out, size_t outlen);
void units_format_size(uint64_t bytes, char *out, size_t outlen);

#endif
