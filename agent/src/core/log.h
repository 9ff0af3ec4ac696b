/*
 * log.h - leveled logging to stderr, one line per event.
 *
 * Lines look like "2026-11-23T06:50:22Z warn fill: origin stalled key=...".
 * The level is set once at start (config `log_level`); logging is safe to
 * call from worker threads (each line is one fprintf on an unbuffered
 * stream, which glibc serialises). Warn and error lines are also kept in
 * a small ring in memory for the admin status page (log_ring.h).
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int log_level_parse(const char *name);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
