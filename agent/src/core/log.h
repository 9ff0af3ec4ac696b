/*
 * log.h - leveled logging, one line per event, to stderr or to a file.
 *
 * Lines look like "2026-11-23T06:50:22Z warn fill: origin stalled key=...".
 * The level is set once at start (config `log_level`), the destination too
 * (config `log_file`: empty for stderr, else a file opened for append).
 * Logging is safe to call from worker threads: each line is formatted on
 * the caller's stack and written with one write(2) on a descriptor opened
 * with O_APPEND, so lines never interleave within a file. log_reopen swaps
 * the file under the same descriptor number (dup3), so a thread writing
 * meanwhile writes its line whole to the old file or to the new one.
 *
 * Values that come from outside (keys, paths, origin text) go through
 * log_value, which quotes and escapes them so that they can neither end
 * the line nor forge another `name=value` field.
 *
 * Warn and error lines are also kept in a small ring in memory for the
 * admin status page (log_ring.h).
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Longest line written, newline included (longer messages are cut): room
 * for a key of KEY_MAX bytes escaped at worst (4 bytes each) and the
 * fields around it. */
#define LOG_LINE_MAX 12288

void log_set_level(enum log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int log_level_parse(const char *name);

/* Send lines to `path`, opened for append and created with mode 0640
 * (less the umask); NULL or "" to stderr. Called at start, and again when
 * a reload changes log_file. Returns 0, or -errno (lines still go where
 * they went). Loop thread only. */
int log_open(const char *path);
/* Open the log file again by its name (logrotate renamed it; SIGHUP): the
 * following lines go to the file now at that name, created if needed.
 * Nothing to do when logging to stderr. Returns 0, or -errno, in which
 * case lines keep going to the file already open. Loop thread only. */
int log_reopen(void);

/* Format one line, "<UTC time> <level> <message>\n", into line[cap]
 * (cap >= 64); returns its length, newline included. */
size_t log_format_line(char *line, size_t cap, enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append s to out as one logfmt value: as is when it is non-empty and has
 * only printable bytes other than space, '"' and '\\'; otherwise in double
 * quotes, with '"' and '\\' escaped by a backslash, \n \r \t as such and
 * other control bytes (and DEL) as \xHH. Bytes >= 0x80 pass unchanged. */
struct sl_buf;
void log_value(struct sl_buf *out, const char *s);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
