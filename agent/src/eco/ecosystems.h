/*
 * ecosystems.h - the `struct eco` of every ecosystem, each defined in its
 * own file under eco/ and listed once in eco.c's table.
 */
#ifndef SLUICE_ECOSYSTEMS_H
#define SLUICE_ECOSYSTEMS_H

#include "eco/eco.h"

extern const struct eco eco_generic;       /* generic.c */

/* pending.c: routes of the public registries, passed through until their
 * ecosystem is built. */
extern const struct eco eco_npm;
extern const struct eco eco_pypi;
extern const struct eco eco_pypi_files;
extern const struct eco eco_cargo_index;
extern const struct eco eco_cargo_dl;
extern const struct eco eco_maven;
extern const struct eco eco_go;

#endif
