/*
 * dirahead.h: fetch-ahead for directories of small files.
 *
 * A reader that walks a directory of small files (a DataLoader over
 * samples, `find | xargs cat`, tar) asks for them one at a time, and each
 * cold one costs the under-store's round trip.  objget tells dirahead of
 * every read that starts at the first byte of a small file; once a few
 * distinct files of one directory were read close together, a background
 * thread walks that directory's listing (through the metadata cache, which
 * keeps its files' stat answers fresh as it goes) and fetches the files
 * that are not cached as read-ahead (reader_prefetch: spare page buffers
 * only, demand reads go first).
 *
 * Bounds: a directory whose small files total at most max_bytes is fetched
 * whole (a shuffled epoch reads all of it, in an order nobody can guess);
 * a larger one only DIRAHEAD_WINDOW files past what was read.  The walk
 * uses at most half the reader's page buffers at once.  In a cluster a
 * worker fetches only the pages it serves.
 *
 * Threads: dirahead_note on request threads (a mutex and a short scan);
 * one walker thread per worker.
 */
#ifndef FERRY_DIRAHEAD_H
#define FERRY_DIRAHEAD_H

#include <stdint.h>

#include "meta.h"
#include "mounts.h"
#include "reader.h"
#include "router.h"

#define DIRAHEAD_WINDOW 64 /* files fetched past what was read, large dirs */

struct dirahead;

/* max_bytes 0: off (dirahead_open returns NULL, notes are no-ops). */
struct dirahead *dirahead_open(struct meta_cache *mc, struct router *rt,
    struct reader *rd, int64_t max_bytes);
void dirahead_close(struct dirahead **da);

/* A read from byte 0 of path, an object of size bytes, began. */
void dirahead_note(struct dirahead *da, struct mount *m, const char *path,
    int64_t size);

/* Directories walked since the start, and files fetched ahead. */
void dirahead_stats(struct dirahead *da, int64_t *walks, int64_t *files);

#endif
