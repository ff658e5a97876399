/*
 * s3_reqxml.h: the XML documents S3 clients send the gateway in a request
 * body (DeleteObjects' Delete, CompleteMultipartUpload's), parsed with the strict, bounded scanner of
 * common/xml_scan.h.  Pure: no I/O; safe from any thread.
 */
#ifndef FERRY_S3_REQXML_H
#define FERRY_S3_REQXML_H

#include <stddef.h>

#define S3_DELETE_MAX 1000 /* S3's limit of keys per DeleteObjects */

/* One Object of a Delete document: its Key (decoded, NUL-terminated;
 * may be empty) and whether it named a VersionId. */
typedef int (*s3_delete_fn)(void *arg, const char *key, size_t len,
    int has_version);

/*
 * Parses <Delete>(<Object><Key>..</Key>[<VersionId>..</VersionId>]
 * </Object>)+[<Quiet>true|false</Quiet>]</Delete> (any namespace
 * attribute): calls fn for each Object in order (a non-zero return stops
 * the parse and is returned) and sets *quiet.  -EIO when the document is
 * malformed, is not a Delete, has an Object without one Key, has no
 * Object or more than S3_DELETE_MAX.  Objects before an error were given
 * to fn already: parse once with a counting fn to validate, then act.
 */
int s3_delete_parse(const char *xml, size_t len, s3_delete_fn fn, void *arg,
    int *quiet);

#define S3_COMPLETE_MAX 10000 /* parts of one multipart upload */

/* One Part of a CompleteMultipartUpload document: its PartNumber (1..
 * 10000) and ETag (without quotes, NUL-terminated). */
typedef int (*s3_complete_fn)(void *arg, int number, const char *etag,
    size_t len);

/*
 * Parses <CompleteMultipartUpload>(<Part><PartNumber>N</PartNumber>
 * <ETag>..</ETag>[<Checksum*>..</Checksum*>]</Part>)+
 * </CompleteMultipartUpload>: calls fn for each Part in order.  -EIO
 * when malformed, no Part, more than S3_COMPLETE_MAX, a Part without one
 * PartNumber (a decimal in range) or one ETag.
 */
int s3_complete_parse(const char *xml, size_t len, s3_complete_fn fn,
    void *arg);

#endif
