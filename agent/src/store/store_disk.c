/*
 * store_disk.c - the disk implementation of store.h.
 *
 * All paths are opened relative to directory fds (openat/renameat/unlinkat)
 * taken at init, so the agent never builds a path from request bytes: object
 * names are hex digests produced by key.c.
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/common.h"
#include "core/config.h"
#include "store/fault.h"
#include "core/log.h"

static atomic_ulong temp_seq;

static int open_subdir(int dir_fd, const char *name)
{
    if (mkdirat(dir_fd, name, 0755) == -1 && errno != EEXIST)
        return -1;
    return openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int store_init(struct store *st, const char *dir, char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    st->dir_fd = st->objects_fd = st->tmp_fd = -1;
    if (sl_mkdir_p(dir, 0755) == -1) {
        snprintf(err, errlen, "cache_dir %s: cannot create: %s", dir, strerror(errno));
        return -1;
    }
    st->dir = sl_strdup(dir);
    st->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st->dir_fd >= 0) {
        st->objects_fd = open_subdir(st->dir_fd, "objects");
        st->tmp_fd = open_subdir(st->dir_fd, "tmp");
    }
    if (st->dir_fd < 0 || st->objects_fd < 0 || st->tmp_fd < 0) {
        snprintf(err, errlen, "cache_dir %s: cannot open: %s", dir, strerror(errno));
        store_close(st);
        return -1;
    }
    return 0;
}

void store_close(struct store *st)
{
    if (st->tmp_fd >= 0)
        close(st->tmp_fd);
    if (st->objects_fd >= 0)
        close(st->objects_fd);
    if (st->dir_fd >= 0)
        close(st->dir_fd);
    free(st->dir);
    memset(st, 0, sizeof(*st));
    st->dir_fd = st->objects_fd = st->tmp_fd = -1;
}

int store_sweep_temp(struct store *st)
{
    int fd = dup(st->tmp_fd);
    if (fd < 0)
        return 0;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return 0;
    }
    rewinddir(d);
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (unlinkat(st->tmp_fd, de->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

/* objects/ab/cd/<hex>: the two level directories under objects_fd. */
static void object_names(const uint8_t hash[KEY_HASH_LEN], char l1[3], char l2[6], char leaf[KEY_HEX_LEN + 1])
{
    key_hex(hash, leaf);
    memcpy(l1, leaf, 2);
    l1[2] = '\0';
    memcpy(l2, leaf, 2);
    l2[2] = '/';
    memcpy(l2 + 3, leaf + 2, 2);
    l2[5] = '\0';
}

static void object_path(const uint8_t hash[KEY_HASH_LEN], char *out, size_t outlen)
{
    char l1[3], l2[6], leaf[KEY_HEX_LEN + 1];
    object_names(hash, l1, l2, leaf);
    snprintf(out, outlen, "%s/%s", l2, leaf);
}

enum store_open_result store_open_object(struct store *st, const uint8_t hash[KEY_HASH_LEN],
                                         const char *key, int *fd_out, struct obj_meta *meta,
                                         struct stat *st_out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    char path[96];
    object_path(hash, path, sizeof(path));
    int fd = openat(st->objects_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *why = errno == ENOENT ? "missing" : "open failed";
        return errno == ENOENT ? STORE_OPEN_MISSING : STORE_OPEN_ERROR;
    }
    uint8_t block[OBJ_HEADER_SIZE];
    ssize_t n = pread(fd, block, sizeof(block), 0);
    struct stat sb;
    char err[128];
    enum store_open_result res = STORE_OPEN_CORRUPT;
    memset(meta, 0, sizeof(*meta));
    if (n != (ssize_t)sizeof(block) || fstat(fd, &sb) == -1) {
        *why = "short header";
    } else if (obj_header_decode(block, sizeof(block), meta, err, sizeof(err)) != 0) {
        *why = "bad header";
    } else if (strcmp(meta->key, key) != 0) {
        *why = "key mismatch";
    } else if ((uint64_t)sb.st_size != OBJ_HEADER_SIZE + meta->size) {
        *why = "size mismatch";
    } else {
        *fd_out = fd;
        *st_out = sb;
        return STORE_OPEN_OK;
    }
    obj_meta_free(meta);
    close(fd);
    return res;
}

int store_temp_create(struct store *st, const uint8_t hash[KEY_HASH_LEN], struct store_temp *t)
{
    char hex[KEY_HEX_LEN + 1];
    key_hex(hash, hex);
    snprintf(t->name, sizeof(t->name), "%s.%ld.%lu", hex, (long)getpid(),
             (unsigned long)atomic_fetch_add(&temp_seq, 1));
    t->written_back = 0;
    t->fd = openat(st->tmp_fd, t->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (t->fd < 0) {
        t->name[0] = '\0';
        return -errno;
    }
    return 0;
}

/*
 * Once STORE_WRITEBACK_EVERY has been written since the last time, start
 * writing it back without waiting for it (Linux's sync_file_range;
 * elsewhere nothing): a large body's commit fsync then has at most that
 * much left to flush, so the commit window - a fill's last byte to its
 * object in the index - is not the whole body's flush, and a fill never
 * holds more than that much of dirty page cache. Not for every write: each
 * start submits the range to the disk (a virtio kick on a VM), and per
 * write that was a third of the agent's CPU in a burst of fills
 * (docs/performance.md section 15); bodies below it are flushed by the
 * commit's fsync alone. A failure here is not the write's: the commit's
 * fsync reports any.
 */
static void start_writeback(struct store_temp *t, uint64_t end)
{
    if (end - t->written_back < STORE_WRITEBACK_EVERY)
        return;
#ifdef SYNC_FILE_RANGE_WRITE
    (void)sync_file_range(t->fd, (off_t)(OBJ_HEADER_SIZE + t->written_back), (off_t)(end - t->written_back),
                          SYNC_FILE_RANGE_WRITE);
#endif
    t->written_back = end;
}

int store_temp_writev(struct store_temp *t, const struct iovec *iov_in, int iovcnt, uint64_t off)
{
    struct iovec iov[STORE_IOV_MAX];
    SL_ASSERT(iovcnt > 0 && iovcnt <= STORE_IOV_MAX);
    memcpy(iov, iov_in, (size_t)iovcnt * sizeof(*iov));
    bool wrote_some = false;
    struct iovec *v = iov;
    while (iovcnt > 0) {
        size_t total = 0;
        for (int i = 0; i < iovcnt; i++)
            total += v[i].iov_len;
        size_t n = total;
#ifdef SLUICE_TESTING
        int f = fault_before_write(&n, off);
        if (f < 0)
            return (f == -EIO && wrote_some) ? -STORE_ESHORT : f;
#endif
        if (n == 0)
            return -STORE_ESHORT;   /* the seam's "no progress" */
        /* A shortened write (fault seam) covers only the first n bytes. */
        int cnt = 0;
        size_t acc = 0;
        struct iovec last = { 0 };
        while (cnt < iovcnt && acc < n) {
            last = v[cnt];
            acc += v[cnt].iov_len;
            cnt++;
        }
        if (acc > n) {
            v[cnt - 1].iov_len -= acc - n;
        }
        ssize_t w = pwritev(t->fd, v, cnt, (off_t)(OBJ_HEADER_SIZE + off));
        if (acc > n)
            v[cnt - 1] = last;
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return (errno == EIO && wrote_some) ? -STORE_ESHORT : -errno;
        }
        if (w == 0)
            return wrote_some ? -STORE_ESHORT : -EIO;
        wrote_some = true;
        off += (uint64_t)w;
        /* Skip what was written. */
        size_t left = (size_t)w;
        while (iovcnt > 0 && left >= v->iov_len) {
            left -= v->iov_len;
            v++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            v->iov_base = (char *)v->iov_base + left;
            v->iov_len -= left;
        }
    }
    start_writeback(t, off);
    return 0;
}

static int ensure_object_dirs(struct store *st, const uint8_t hash[KEY_HASH_LEN])
{
    char l1[3], l2[6], leaf[KEY_HEX_LEN + 1];
    object_names(hash, l1, l2, leaf);
    if (mkdirat(st->objects_fd, l1, 0755) == -1 && errno != EEXIST)
        return -errno;
    if (mkdirat(st->objects_fd, l2, 0755) == -1 && errno != EEXIST)
        return -errno;
    return 0;
}

int store_temp_commit(struct store *st, struct store_temp *t, const uint8_t hash[KEY_HASH_LEN],
                      const struct obj_meta *meta)
{
    uint8_t block[OBJ_HEADER_SIZE];
    int rc = 0;
#ifdef SLUICE_TESTING
    if (fault_commit_delay_ms() > 0)
        fault_sleep_ms(fault_commit_delay_ms());
#endif
    if (obj_header_encode(meta, block) != 0)
        rc = -EOVERFLOW;
    else if (pwrite(t->fd, block, sizeof(block), 0) != (ssize_t)sizeof(block))
        rc = errno ? -errno : -EIO;
    else if (fsync(t->fd) == -1)
        rc = -errno;
    else if ((rc = ensure_object_dirs(st, hash)) == 0) {
        char path[96];
        object_path(hash, path, sizeof(path));
        if (renameat(st->tmp_fd, t->name, st->objects_fd, path) == -1)
            rc = -errno;
        else
            t->name[0] = '\0';
    }
    if (rc != 0)
        store_temp_unlink(st, t);
    store_temp_close(t);
    return rc;
}

void store_temp_unlink(struct store *st, struct store_temp *t)
{
    if (t->name[0]) {
        if (unlinkat(st->tmp_fd, t->name, 0) == -1 && errno != ENOENT)
            log_warn("store: cannot remove temp file %s: %s", t->name, strerror(errno));
        t->name[0] = '\0';
    }
}

void store_temp_close(struct store_temp *t)
{
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
}

int store_object_open(struct store *st, const uint8_t hash[KEY_HASH_LEN])
{
    char path[96];
    object_path(hash, path, sizeof(path));
    int fd = openat(st->objects_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    return fd >= 0 ? fd : -errno;
}

int store_remove_object(struct store *st, const uint8_t hash[KEY_HASH_LEN])
{
    char path[96];
    object_path(hash, path, sizeof(path));
    return unlinkat(st->objects_fd, path, 0) == 0 ? 0 : -errno;
}

int64_t store_fs_size(struct store *st)
{
    struct statvfs sv;
    if (fstatvfs(st->dir_fd, &sv) == -1)
        return -1;
    return (int64_t)sv.f_blocks * (int64_t)sv.f_frsize;
}

int64_t store_fs_free(const struct store *st)
{
    struct statvfs sv;
    if (fstatvfs(st->dir_fd, &sv) == -1)
        return -1;
    return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool parse_hex_name(const char *name, uint8_t hash[KEY_HASH_LEN])
{
    if (strlen(name) != KEY_HEX_LEN)
        return false;
    for (int i = 0; i < KEY_HASH_LEN; i++) {
        int hi = hex_nibble(name[2 * i]), lo = hex_nibble(name[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        hash[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* Validate one object file found by the scan; remove it when invalid. */
static void scan_one(int dfd, const char *l2, const char *name,
                     store_scan_fn fn, void *ctx, long *count)
{
    uint8_t hash[KEY_HASH_LEN];
    if (!parse_hex_name(name, hash) || strncmp(name, l2, 2) != 0 || strncmp(name + 2, l2 + 3, 2) != 0) {
        unlinkat(dfd, name, 0);
        return;
    }
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    uint8_t block[OBJ_HEADER_SIZE];
    struct stat sb;
    struct obj_meta meta;
    char err[128];
    memset(&meta, 0, sizeof(meta));
    bool ok = pread(fd, block, sizeof(block), 0) == (ssize_t)sizeof(block) && fstat(fd, &sb) == 0 &&
              obj_header_decode(block, sizeof(block), &meta, err, sizeof(err)) == 0;
    if (ok) {
        uint8_t check[KEY_HASH_LEN];
        key_hash(meta.key, strlen(meta.key), check);
        ok = memcmp(check, hash, KEY_HASH_LEN) == 0 &&
             (uint64_t)sb.st_size == OBJ_HEADER_SIZE + meta.size;
    }
    close(fd);
    if (ok) {
        fn(ctx, hash, (uint64_t)sb.st_size, &meta, (int64_t)sb.st_atime);
        (*count)++;
    } else {
        log_warn("store: removing invalid object %s/%s", l2, name);
        unlinkat(dfd, name, 0);
    }
    obj_meta_free(&meta);
}

static void scan_leaf_dir(struct store *st, const char *l2, store_scan_fn fn, void *ctx, long *count)
{
    int dfd = openat(st->objects_fd, l2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return;
    int dfd2 = dup(dfd);
    DIR *d = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
    if (!d) {
        if (dfd2 >= 0)
            close(dfd2);
        close(dfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            scan_one(dfd, l2, de->d_name, fn, ctx, count);
    closedir(d);
    close(dfd);
}

static bool is_hex2(const char *s)
{
    return strlen(s) == 2 && hex_nibble(s[0]) >= 0 && hex_nibble(s[1]) >= 0;
}

long store_scan(struct store *st, store_scan_fn fn, void *ctx)
{
    long count = 0;
    int fd = dup(st->objects_fd);
    DIR *top = fd >= 0 ? fdopendir(fd) : NULL;
    if (!top) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    rewinddir(top);
    struct dirent *a;
    while ((a = readdir(top)) != NULL) {
        if (!is_hex2(a->d_name))
            continue;
        int l1fd = openat(st->objects_fd, a->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *mid = l1fd >= 0 ? fdopendir(l1fd) : NULL;
        if (!mid) {
            if (l1fd >= 0)
                close(l1fd);
            continue;
        }
        struct dirent *b;
        while ((b = readdir(mid)) != NULL) {
            if (!is_hex2(b->d_name))
                continue;
            char l2[6] = { a->d_name[0], a->d_name[1], '/', b->d_name[0], b->d_name[1], '\0' };
            scan_leaf_dir(st, l2, fn, ctx, &count);
        }
        closedir(mid);
    }
    closedir(top);
    return count;
}
