/*
 * s3_listxml.h: parsers for the XML documents the s3:// under-store
 * reads: a ListObjectsV2 reply (ListBucketResult), an S3 error reply
 * (Error), and the small results of writes (an upload's id, an ETag).  Built on a small strict scanner that knows elements, attributes,
 * text, comments, CDATA and the predefined and numeric entities, and
 * nothing else (a DOCTYPE is refused, so no entity expansion).  Input is
 * never trusted: every name, text and nesting depth has a hard limit and
 * malformed input gives -EIO.
 */
#ifndef FERRY_S3_LISTXML_H
#define FERRY_S3_LISTXML_H

#include <stddef.h>
#include <stdint.h>

#define S3_LIST_KEY_MAX 4096   /* decoded key or prefix */
#define S3_LIST_ETAG_MAX 128   /* ETag without quotes, with its NUL */
#define S3_LIST_TOKEN_MAX 4096 /* NextContinuationToken, with its NUL */

/* One Contents or CommonPrefixes entry, as given to the callback. */
struct s3_list_item {
	int is_prefix;   /* 1: CommonPrefixes/Prefix; 0: Contents */
	const char *key; /* decoded, NUL-terminated (&#0; is refused) */
	size_t key_len;
	int64_t size;    /* Contents only; 0 for prefixes */
	int64_t mtime;   /* LastModified as unix seconds; 0 if absent */
	const char *etag; /* surrounding quotes removed; "" if absent */
};

/* The document-level fields of a ListBucketResult. */
struct s3_list_result {
	int is_truncated;
	int key_count; /* KeyCount, or -1 if absent */
	char next_token[S3_LIST_TOKEN_MAX]; /* NextContinuationToken or "" */
};

/*
 * Called once per Contents or CommonPrefixes entry, in document order.
 * A non-zero return stops the parse and is returned by s3_listxml_parse.
 */
typedef int (*s3_list_item_fn)(void *arg, const struct s3_list_item *it);

/*
 * Parses a ListBucketResult document in xml[0..len).  Returns 0, -EIO if the
 * document is malformed, over a limit or not a ListBucketResult, or the
 * callback's non-zero value.  Entries seen before an error have already
 * been given to fn, so a caller must discard them on error.
 */
int s3_listxml_parse(const char *xml, size_t len, s3_list_item_fn fn,
    void *arg, struct s3_list_result *res);

/*
 * Parses an Error document: copies Code and Message (truncated to fit,
 * always NUL-terminated; "" if absent).  Returns 0, or -EIO if the document
 * is malformed or not an Error.
 */
int s3_errxml_parse(const char *xml, size_t len, char *code, size_t code_sz,
    char *msg, size_t msg_sz);

/* One field of a result document: the text of the root's child name. */
struct s3_xml_field {
	const char *name; /* "UploadId", "ETag", "LastModified" */
	char *out;        /* its decoded text, NUL-terminated */
	size_t cap;       /* bytes at out, its NUL included */
	int found;
};

/*
 * Parses the result document of a write (InitiateMultipartUploadResult,
 * CompleteMultipartUploadResult, CopyObjectResult, CopyPartResult): its
 * root element must be root, and the text of each of the root's children
 * named in f[0..nf) is copied to its out.  Returns 0, or -EIO if the
 * document is malformed, has another root, repeats a field or has a
 * field's text too long for its cap (never cut).
 */
int s3_resultxml_parse(const char *xml, size_t len, const char *root,
    struct s3_xml_field *f, int nf);

#endif
