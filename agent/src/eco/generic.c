/*
 * generic.c - the "generic" ecosystem: any origin of plain files that never
 * change once published (build outputs, release archives, mirrors).
 *
 * Every GET or HEAD is an immutable artifact, the query is part of the
 * object, the path follows the shared canonical rules (canon.h), and no
 * default origin exists: the route is off until origin_generic is set.
 */
#include "eco/eco.h"

static enum eco_class generic_classify(const struct canon *c)
{
    (void)c;
    return ECO_IMMUTABLE;
}

const struct eco eco_generic = {
    .name = "generic",
    .key_query = true,
    .classify = generic_classify,
};
