/*
 * log.c - leveled logging to stderr or a file (see log.h).
 *
 * One function formats a line (log_format_line), one writes it
 * (log_write). The descriptor number never changes once a file is open:
 * log_reopen (and log_open again, on a reload) puts the new file under it
 * with dup3, which is atomic for threads writing meanwhile. Warnings and
 * errors are also kept in a ring for the status page (log_ring.h).
 */
#include "core/log.h"
#include "core/log_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"

static enum log_level current_level = LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };
static _Atomic int log_fd = STDERR_FILENO;   /* its number never changes once a file is open */
static char log_path[PATH_MAX];   /* "" = stderr */

void log_set_level(enum log_level level)
{
    current_level = level;
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

/* ---------------------------------------------------------- destination */

static int open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

/* Make fd the log's descriptor (it is closed or kept): the first time by
 * taking its number, afterwards by putting it under the number in use. */
static int install(int fd)
{
    if (atomic_load(&log_fd) == STDERR_FILENO && fd != STDERR_FILENO) {
        atomic_store(&log_fd, fd);
        return 0;
    }
    int rc = dup3(fd, atomic_load(&log_fd), O_CLOEXEC) < 0 ? -errno : 0;
    if (fd != STDERR_FILENO)
        close(fd);
    return rc;
}

int log_open(const char *path)
{
    if (!path || !*path) {
        if (!log_path[0])
            return 0;
        log_path[0] = '\0';
        return install(STDERR_FILENO);   /* back to stderr, under the same number */
    }
    if (strlen(path) >= sizeof(log_path))
        return -ENAMETOOLONG;
    int fd = open_log_file(path);
    if (fd < 0)
        return fd;
    int rc = install(fd);
    if (rc == 0)
        sl_strlcpy(log_path, path, sizeof(log_path));
    return rc;
}

int log_reopen(void)
{
    if (!log_path[0])
        return 0;
    int fd = open_log_file(log_path);
    return fd < 0 ? fd : install(fd);
}

/* -------------------------------------------------------------- lines */

size_t log_format_line(char *line, size_t cap, enum log_level level, const char *fmt, va_list ap)
{
    SL_ASSERT(cap >= 64 && (unsigned)level < SL_ARRAY_LEN(level_names));
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    int n = snprintf(line, cap - 1, "%s %s ", stamp, level_names[level]);
    int m = vsnprintf(line + n, cap - 1 - (size_t)n, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : SL_MIN((size_t)m, cap - 2 - (size_t)n));
    line[len++] = '\n';
    line[len] = '\0';
    return len;
}

/* One write(2) per line: whole lines, even from several threads. */
static void log_write(const char *line, size_t len)
{
    ssize_t w;
    do
        w = write(atomic_load(&log_fd), line, len);
    while (w < 0 && errno == EINTR);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < current_level)
        return;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    size_t len = log_format_line(line, sizeof(line), level, fmt, ap);
    va_end(ap);
    log_write(line, len);
    if (level >= LOG_WARN)
        log_ring_push(line);
}

/* ------------------------------------------------------------- values */

static bool plain_byte(unsigned char c)
{
    return c > ' ' && c != 0x7f && c != '"' && c != '\\';
}

static void append_escaped(struct sl_buf *out, unsigned char c)
{
    char esc[8];
    if (c == '"' || c == '\\')
        snprintf(esc, sizeof(esc), "\\%c", c);
    else if (c == '\n' || c == '\r' || c == '\t')
        snprintf(esc, sizeof(esc), "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
    else if (c < ' ' || c == 0x7f)
        snprintf(esc, sizeof(esc), "\\x%02x", c);
    else
        snprintf(esc, sizeof(esc), "%c", c);
    sl_buf_append_str(out, esc);
}

void log_value(struct sl_buf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    bool quote = *p == '\0';
    for (const unsigned char *q = p; *q && !quote; q++)
        quote = !plain_byte(*q);
    if (!quote) {
        sl_buf_append_str(out, s);
        return;
    }
    sl_buf_append(out, "\"", 1);
    for (; *p; p++)
        append_escaped(out, *p);
    sl_buf_append(out, "\"", 1);
}
