/*
 * tier.c - the calls every tier answers, dispatched to its operations
 * (see tier.h).
 */
#include "store/tier.h"

#include <unistd.h>

#include "core/common.h"

void tier_read_resume(struct tier_read *r)
{
    SL_ASSERT(r && r->tier);
    r->tier->ops->read_resume(r);
}

void tier_read_abort(struct tier_read *r)
{
    SL_ASSERT(r && r->tier);
    r->tier->ops->read_abort(r);
}

void tier_write(struct tier *t, const char *key, const uint8_t hash[KEY_HASH_LEN], int fd,
                void (*done)(void *ctx, int rc), void *ctx)
{
    SL_ASSERT(t && tier_is_sink(t) && key && fd >= 0 && done);
    t->ops->write(t, key, hash, fd, done, ctx);
}

void tier_destroy(struct tier *t)
{
    if (t)
        t->ops->destroy(t);
}
