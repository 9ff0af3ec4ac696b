/*
 * integrity.h - which published digest a new artifact fill is verified
 * against while it streams (fill.h, fill_verify).
 *
 * Where the digest comes from, by ecosystem (eco.h):
 *   - a note the metadata's rewriter made (digest_notes.h): npm's
 *     dist.integrity / dist.shasum, PyPI's #sha256= and hashes, Cargo's
 *     cksum; looked up by the artifact's digest_notes_name;
 *   - a sidecar file beside the artifact (Maven's ".sha1"): read from the
 *     cache when stored, else fetched by a fill of its own (which stores
 *     it, so the client's own request for it is a hit), the artifact's
 *     last byte held until it arrives.
 * An artifact with neither is filled and stored as before (unverified),
 * counted in sluice_integrity_unknown_total when its ecosystem does publish
 * digests. A background refetch (fill.c) is verified against what its
 * first fill knew.
 */
#ifndef SLUICE_INTEGRITY_H
#define SLUICE_INTEGRITY_H

#include "core/agent.h"
#include "fill/fill.h"
#include "route/canon.h"

/* Arm f (just started for cn, before the loop runs again) with the digest
 * cn's artifact must have, when one is known or can be fetched. */
void integrity_arm(struct agent *a, struct fill *f, const struct canon *cn);

#endif
