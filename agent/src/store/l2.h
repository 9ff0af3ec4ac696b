/*
 * l2.h - the agent's second-level cache: the tiers after L1 (store/tier.h)
 * opened from the settings, and the queue that copies committed objects
 * to the sinks among them.
 *
 * a->tiers[] is in lookup order: a miss asks tiers[0], then tiers[1]...,
 * then the origin (fill.h, fill_start_lookup). l2_open appends the shared
 * directory tier (l2_dir); the S3 tier is appended after it the same way.
 *
 * Uploads: every committed L1 object is queued once per sink tier (a dup
 * of its descriptor; overflow past l2_upload_queue_max drops the copy,
 * counted as `dropped`) and copied by at most l2_uploads_max tier_write()s
 * at a time, on the tier's own workers or watchers, never on the serving
 * path. Results are counted per tier (ok, failed, dropped).
 *
 * A key whose L2 copy failed after its head (cut mid-body, or not the
 * digest its registry published) is noted, and its next miss skips the
 * tiers once: the origin's copy is then committed and uploaded over the
 * bad one, so a corrupt L2 object heals instead of failing every request.
 * The note is a small ring (L2_SKIP_MAX keys); a key pushed out of it just
 * fails once more.
 *
 * Invariants: a queued upload owns its descriptor until it is started or
 * dropped; a->l2_uploads_running counts writes whose done has yet to run;
 * once a->stopping, nothing new is started and the queue is emptied.
 */
#ifndef SLUICE_L2_H
#define SLUICE_L2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/agent.h"

/* Open the tiers the settings ask for and append them to a->tiers.
 * 0, or -1 with a message in err. */
int l2_open(struct agent *a, char *err, size_t errlen);

/* Queue copies of the committed object in fd (objfile format) to every
 * sink tier before `source` in lookup order (the object was read from tier
 * `source`, so those missed it and the ones after were not asked; -1:
 * from the origin, every sink); fd stays the caller's. */
void l2_upload(struct agent *a, const uint8_t hash[KEY_HASH_LEN], const char *key, int fd, int source);

/* Shutdown: drop the uploads still queued (their copies are not made). */
void l2_drop_queue(struct agent *a);

/* After the worker pool stopped (every write reported): free the tiers. */
void l2_close(struct agent *a);

/* Note that key's L2 copy failed after its head; l2_take_skip returns
 * true (once) for a noted key. */
void l2_skip_once(struct agent *a, const uint8_t hash[KEY_HASH_LEN]);
bool l2_take_skip(struct agent *a, const uint8_t hash[KEY_HASH_LEN]);

#endif
