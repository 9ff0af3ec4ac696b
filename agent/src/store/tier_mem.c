/*
 * tier_mem.c - a tier that keeps objects in memory (see tier.h): for tests,
 * and the simplest model of the contract the other tiers follow.
 *
 * Objects are reference counted: a read holds its version, so an object
 * replaced or written again while being read is still read whole, as it
 * was. Every callback is delivered from a zero-delay timer of the read
 * (one piece per loop pass), never from inside tier_read or resume.
 *
 * Invariants: a read is in exactly one state: waiting for its timer,
 * paused (no timer), or inside a callback; `dead` marks a read aborted
 * from inside its own callback, freed when the callback returns.
 */
#include <errno.h>
#include <ev.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "store/tier.h"

#define MEM_READ_MAGIC 0x4d454d52u    /* "MEMR" */
#define MEM_WRITE_MAGIC 0x4d454d57u   /* "MEMW" */
#define DEFAULT_PIECE (64 * 1024)

struct mem_obj {
    struct mem_obj *next;
    int refs;                 /* the list, and each read */
    uint8_t hash[KEY_HASH_LEN];
    struct obj_meta meta;     /* meta.key is the object's key */
    uint8_t *body;
};

struct mem_tier {
    struct tier base;         /* first: the interface hands out &base */
    struct ev_loop *loop;
    size_t piece;
    struct mem_obj *objs;
    size_t count;
    int pending;              /* reads and writes not reported yet */
};

enum read_step { STEP_META, STEP_DATA, STEP_DONE };

struct mem_read {
    struct tier_read base;    /* first */
    unsigned magic;
    struct mem_tier *t;
    struct mem_obj *obj;      /* NULL: a miss */
    struct tier_read_cb cb;
    void *ctx;
    enum read_step step;
    uint64_t pos;
    ev_timer kick;
    bool paused, in_callback, dead;
};

struct mem_write {
    unsigned magic;
    struct mem_tier *t;
    int rc;
    void (*done)(void *ctx, int rc);
    void *ctx;
    ev_timer kick;
};

static void obj_unref(struct mem_obj *o)
{
    SL_ASSERT(o->refs > 0);
    if (--o->refs > 0)
        return;
    obj_meta_free(&o->meta);
    free(o->body);
    free(o);
}

static struct mem_obj *find(struct mem_tier *t, const uint8_t hash[KEY_HASH_LEN], struct mem_obj ***link)
{
    for (struct mem_obj **pp = &t->objs; *pp; pp = &(*pp)->next)
        if (memcmp((*pp)->hash, hash, KEY_HASH_LEN) == 0) {
            if (link)
                *link = pp;
            return *pp;
        }
    return NULL;
}

/* ------------------------------------------------------------ reading */

static void read_free(struct mem_read *r)
{
    ev_timer_stop(r->t->loop, &r->kick);
    if (r->obj)
        obj_unref(r->obj);
    r->t->pending--;
    r->magic = 0;
    free(r);
}

static void read_schedule(struct mem_read *r)
{
    ev_timer_set(&r->kick, 0., 0.);
    ev_timer_start(r->t->loop, &r->kick);
}

/* One step: meta, one piece of body, or the end. */
static void read_step(struct mem_read *r)
{
    r->in_callback = true;
    if (!r->obj) {
        r->step = STEP_DONE;
        r->cb.on_done(r->ctx, TIER_MISS, "no such object");
    } else if (r->step == STEP_META) {
        r->step = STEP_DATA;
        r->cb.on_meta(r->ctx, &r->obj->meta);
    } else if (r->pos < r->obj->meta.size) {
        size_t n = (size_t)SL_MIN(r->obj->meta.size - r->pos, (uint64_t)r->t->piece);
        size_t took = r->cb.on_data(r->ctx, r->obj->body + r->pos, n);
        if (took == TIER_PAUSE)
            r->paused = true;
        else {
            SL_ASSERT(took == n);
            r->pos += n;
        }
    } else {
        r->step = STEP_DONE;
        r->cb.on_done(r->ctx, TIER_OK, "");
    }
    r->in_callback = false;
}

static void on_read_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct mem_read *r = w->data;
    SL_CHECK_OBJ(r, MEM_READ_MAGIC);
    read_step(r);
    if (r->dead || r->step == STEP_DONE)
        read_free(r);
    else if (!r->paused)
        read_schedule(r);
}

static struct tier_read *mem_read(struct tier *tier, const char *key, const uint8_t hash[KEY_HASH_LEN],
                                  const struct tier_read_cb *cb, void *ctx)
{
    struct mem_tier *t = (struct mem_tier *)tier;
    struct mem_read *r = sl_calloc(1, sizeof(*r));
    r->base.tier = tier;
    r->magic = MEM_READ_MAGIC;
    r->t = t;
    r->cb = *cb;
    r->ctx = ctx;
    r->obj = find(t, hash, NULL);
    if (r->obj && strcmp(r->obj->meta.key, key) != 0)
        r->obj = NULL;   /* another key with this hash: not ours */
    if (r->obj)
        r->obj->refs++;
    ev_init(&r->kick, on_read_kick);
    r->kick.data = r;
    t->pending++;
    read_schedule(r);
    return &r->base;
}

static void mem_read_resume(struct tier_read *base)
{
    struct mem_read *r = (struct mem_read *)base;
    SL_CHECK_OBJ(r, MEM_READ_MAGIC);
    if (!r->paused || r->dead)
        return;
    r->paused = false;
    if (!r->in_callback)
        read_schedule(r);
}

static void mem_read_abort(struct tier_read *base)
{
    struct mem_read *r = (struct mem_read *)base;
    SL_CHECK_OBJ(r, MEM_READ_MAGIC);
    if (r->in_callback)
        r->dead = true;   /* freed when the callback returns */
    else
        read_free(r);
}

/* ------------------------------------------------------------ writing */

static void on_write_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct mem_write *wr = w->data;
    SL_CHECK_OBJ(wr, MEM_WRITE_MAGIC);
    wr->t->pending--;
    wr->done(wr->ctx, wr->rc);
    wr->magic = 0;
    free(wr);
}

/* Read an objfile-format file whole; 0 or -errno. */
static int load(int fd, const char *key, struct obj_meta *meta, uint8_t **body)
{
    uint8_t block[OBJ_HEADER_SIZE];
    char err[128];
    if (pread(fd, block, sizeof(block), 0) != (ssize_t)sizeof(block))
        return -EIO;
    if (obj_header_decode(block, sizeof(block), meta, err, sizeof(err)) != 0)
        return -EINVAL;
    if (strcmp(meta->key, key) != 0) {
        obj_meta_free(meta);
        return -EINVAL;
    }
    *body = sl_malloc((size_t)meta->size);
    if (pread(fd, *body, (size_t)meta->size, OBJ_HEADER_SIZE) != (ssize_t)meta->size) {
        obj_meta_free(meta);
        free(*body);
        return -EIO;
    }
    return 0;
}

static void store_obj(struct mem_tier *t, const uint8_t hash[KEY_HASH_LEN], struct obj_meta *meta, uint8_t *body)
{
    struct mem_obj **link;
    struct mem_obj *old = find(t, hash, &link);
    if (old) {
        *link = old->next;
        t->count--;
        obj_unref(old);
    }
    struct mem_obj *o = sl_calloc(1, sizeof(*o));
    memcpy(o->hash, hash, KEY_HASH_LEN);
    o->meta = *meta;
    o->body = body;
    o->refs = 1;
    o->next = t->objs;
    t->objs = o;
    t->count++;
}

static void mem_write(struct tier *tier, const char *key, const uint8_t hash[KEY_HASH_LEN], int fd,
                      void (*done)(void *ctx, int rc), void *ctx)
{
    struct mem_tier *t = (struct mem_tier *)tier;
    struct mem_write *wr = sl_calloc(1, sizeof(*wr));
    struct obj_meta meta = { 0 };
    uint8_t *body = NULL;
    wr->magic = MEM_WRITE_MAGIC;
    wr->t = t;
    wr->done = done;
    wr->ctx = ctx;
    wr->rc = load(fd, key, &meta, &body);
    close(fd);
    if (wr->rc == 0)
        store_obj(t, hash, &meta, body);
    ev_init(&wr->kick, on_write_kick);
    wr->kick.data = wr;
    ev_timer_set(&wr->kick, 0., 0.);
    ev_timer_start(t->loop, &wr->kick);
    t->pending++;
}

/* ------------------------------------------------------------ the tier */

static void mem_destroy(struct tier *tier)
{
    struct mem_tier *t = (struct mem_tier *)tier;
    SL_ASSERT(t->pending == 0);   /* the owner waits for its reads and writes */
    while (t->objs) {
        struct mem_obj *o = t->objs;
        t->objs = o->next;
        obj_unref(o);
    }
    free(t);
}

static const struct tier_ops mem_ops = {
    .kind = "memory",
    .read = mem_read,
    .read_resume = mem_read_resume,
    .read_abort = mem_read_abort,
    .write = mem_write,
    .destroy = mem_destroy,
};

struct tier *tier_mem_new(struct ev_loop *loop, size_t piece)
{
    struct mem_tier *t = sl_calloc(1, sizeof(*t));
    t->base.ops = &mem_ops;
    sl_strlcpy(t->base.name, "memory", sizeof(t->base.name));
    t->loop = loop;
    t->piece = piece ? piece : DEFAULT_PIECE;
    return &t->base;
}

size_t tier_mem_count(const struct tier *tier)
{
    SL_ASSERT(tier->ops == &mem_ops);
    return ((const struct mem_tier *)tier)->count;
}
