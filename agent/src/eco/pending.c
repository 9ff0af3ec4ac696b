/*
 * pending.c - the routes of the public package registries whose caching is
 * not built yet: each has its default origin, and every request passes
 * through HAProxy to it (no classify operation: nothing is cached, and the
 * agent never canonicalises these paths, so an ecosystem's own encodings,
 * such as npm's "@scope%2fname", reach the registry untouched).
 *
 * When an ecosystem is built, its entry moves out of this file into its
 * own (npm.c, pypi.c, ...).
 */
#include "eco/eco.h"

const struct eco eco_cargo_index = { .name = "cargo_index", .default_origin = "https://index.crates.io" };
const struct eco eco_cargo_dl = { .name = "cargo_dl", .default_origin = "https://static.crates.io" };
const struct eco eco_maven = { .name = "maven", .default_origin = "https://repo.maven.apache.org/maven2" };
const struct eco eco_go = { .name = "go", .default_origin = "https://proxy.golang.org" };
