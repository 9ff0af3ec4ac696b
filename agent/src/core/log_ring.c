/*
 * log_ring.c - the last warnings and errors in memory (see log_ring.h).
 *
 * Invariant: lines[(next - count + i) mod LOG_RING_LINES] for i < count are
 * the kept lines, oldest first; both only change under the mutex.
 */
#include "core/log_ring.h"

#include <pthread.h>
#include <string.h>

#include "core/common.h"

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static char lines[LOG_RING_LINES][LOG_RING_LINE];
static int next, count;

void log_ring_push(const char *line)
{
    pthread_mutex_lock(&ring_lock);
    sl_strlcpy(lines[next], line, LOG_RING_LINE);
    lines[next][strcspn(lines[next], "\n")] = '\0';   /* one line, without its end */
    next = (next + 1) % LOG_RING_LINES;
    if (count < LOG_RING_LINES)
        count++;
    pthread_mutex_unlock(&ring_lock);
}

int log_ring_read(char out[][LOG_RING_LINE], int max)
{
    pthread_mutex_lock(&ring_lock);
    int n = SL_MIN(count, max);
    for (int i = 0; i < n; i++)
        memcpy(out[i], lines[(next - n + i + LOG_RING_LINES) % LOG_RING_LINES], LOG_RING_LINE);
    pthread_mutex_unlock(&ring_lock);
    return n;
}
