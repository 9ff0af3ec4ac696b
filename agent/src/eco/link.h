/*
 * link.h - re-point a link found in a document from one base URL to
 * another (PEP 503 pages: a file link under the files origin becomes the
 * same path under the cache's route).
 *
 * Resolution is libcurl's (the URL API, as origin/redirect.c uses), the
 * parser that later fetches the result, so what is compared is what would
 * be fetched; dot segments are removed before the comparison, so "../"
 * cannot climb out of from_base's path.
 */
#ifndef SLUICE_LINK_H
#define SLUICE_LINK_H

#include <stddef.h>

#include "core/buf.h"

/*
 * Resolve `link` (link[0..len): absolute, or relative as PEP 503 allows,
 * e.g. "../../packages/x.whl"; the bytes left after decoding character
 * references) against `page_url`, the URL the document came from. If the
 * result is under `from_base` (same scheme, host (case-insensitive) and
 * port (explicit or the scheme's default), no user name or password, and a
 * path that is from_base's path followed by '/' or nothing), append to
 * `out` `to_base`, the rest of the path (from the '/' after from_base's
 * path) and '?' + the query if there is one, and return 1. The fragment is
 * never appended: callers add the original fragment bytes themselves.
 *
 * 0: the link is not under from_base (leave it alone). -1: it cannot be
 * parsed, or has a byte that needs guessing: a control byte, a blank,
 * '\\' or any byte past ASCII (out is then untouched, as with 0).
 * from_base and to_base have no trailing '/'; from_base may have a path
 * ("https://files.example/pypi").
 */
int link_rebase(const char *page_url, const char *link, size_t len, const char *from_base, const char *to_base,
                struct sl_buf *out);

#endif
