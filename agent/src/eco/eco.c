/*
 * eco.c - the table of ecosystems (see eco.h).
 *
 * The order is the order of docs/configuration.md's origin rows. A name
 * appears once; eco_find is a linear walk (a handful of entries, looked up
 * when the route map is loaded, never per request).
 */
#include "eco/eco.h"

#include <string.h>

#include "core/common.h"

/* Every ecosystem: defined in its own file under eco/, listed here once. */
extern const struct eco eco_generic;                   /* generic.c */
extern const struct eco eco_npm;                       /* npm.c */
extern const struct eco eco_pypi, eco_pypi_files;      /* pypi.c */
extern const struct eco eco_cargo_index, eco_cargo_dl;  /* cargo.c */
extern const struct eco eco_maven;                     /* maven.c */
extern const struct eco eco_go;                        /* go.c */

static const struct eco *const table[] = {
    &eco_generic,
    &eco_npm,
    &eco_pypi,
    &eco_pypi_files,
    &eco_cargo_index,
    &eco_cargo_dl,
    &eco_maven,
    &eco_go,
};

const struct eco eco_unknown = {
    .name = "",
};

size_t eco_count(void)
{
    return SL_ARRAY_LEN(table);
}

const struct eco *eco_at(size_t i)
{
    SL_ASSERT(i < SL_ARRAY_LEN(table));
    return table[i];
}

const struct eco *eco_find(const char *name, size_t len)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(table); i++)
        if (strlen(table[i]->name) == len && memcmp(table[i]->name, name, len) == 0)
            return table[i];
    return NULL;
}
