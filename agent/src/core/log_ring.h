/*
 * log_ring.h - the last warnings and errors, kept in memory for the admin
 * status page ("recent errors").
 *
 * log_msg (log.c) pushes a copy of every warn and error line it writes;
 * the admin listener reads them back, oldest first. The ring is guarded by
 * a mutex: log lines come from worker threads too. Lines longer than
 * LOG_RING_LINE are cut, and kept without their newline.
 */
#ifndef SLUICE_LOG_RING_H
#define SLUICE_LOG_RING_H

#include <stddef.h>

#define LOG_RING_LINES 20
#define LOG_RING_LINE 512

void log_ring_push(const char *line);

/* Copy the lines (oldest first) into out; returns how many. */
int log_ring_read(char out[][LOG_RING_LINE], int max);

#endif
