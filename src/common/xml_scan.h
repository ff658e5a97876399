/*
 * xml_scan.h: a strict, bounded XML scanner for the small documents S3
 * speaks (list and error replies the s3:// under-store reads; the
 * DeleteObjects and CompleteMultipartUpload requests the gateway reads).
 *
 * The scanner walks the input once, left to right, and never looks past
 * xml + len.  It calls a handler at each start tag and at each end tag; at
 * an end tag it passes the element's decoded text gathered since the last
 * tag, which for a leaf element is its whole content.  Element names are
 * kept on a fixed stack (XML_MAX_DEPTH) as pointers into the input; the
 * decoded text lives in a fixed buffer (XML_TEXT_MAX).  It knows elements,
 * attributes, text, comments, CDATA and the predefined and numeric
 * entities, and nothing else: anything outside that subset (DOCTYPE, so no
 * entity expansion; unbalanced tags, bad entities, raw control characters,
 * text outside the root, a second root) is -EIO.  Input is never trusted.
 *
 * Pure functions on caller memory; safe from any thread.
 */
#ifndef FERRY_XML_SCAN_H
#define FERRY_XML_SCAN_H

#include <stddef.h>

#define XML_MAX_DEPTH 16  /* element nesting */
#define XML_NAME_MAX 64   /* element and attribute names */
#define XML_TEXT_MAX 4096 /* decoded text of one element */

struct xml_handler {
	/* depth counts from 1 (the root element). */
	int (*start)(void *arg, int depth, const char *name, size_t nlen);
	int (*end)(void *arg, int depth, const char *name, size_t nlen,
	    const char *text, size_t tlen);
};

struct xml_scan {
	const char *p, *end;
	struct {
		const char *name;
		size_t len;
	} stack[XML_MAX_DEPTH];
	int depth;
	char text[XML_TEXT_MAX + 1];
	size_t tlen;
};

/*
 * Walks xml[0..len) with s as its state: 0, -EIO (malformed, over a
 * limit), or the first non-zero value a handler returned.
 */
int xml_walk(struct xml_scan *s, const char *xml, size_t len,
    const struct xml_handler *h, void *arg);

/* 1 if name[0..nlen) is lit. */
int xml_name_is(const char *name, size_t nlen, const char *lit);

#endif
