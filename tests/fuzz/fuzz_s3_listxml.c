/*
 * fuzz_s3_listxml.c: libFuzzer harness for the XML parsers: the
 * ListBucketResult, Error and write-result documents the s3:// under-store
 * reads, and the Delete and CompleteMultipartUpload documents the gateway reads (s3_reqxml.c).  The input is copied into an exact-size heap block
 * so that ASan catches any read past the end; every entry given to the
 * callback must be internally consistent (NUL-terminated at key_len, ETag
 * within bounds), and a failed result parse leaves no field found.
 */
// FUZZ_SOURCES: src/common/util.c src/common/dbuf.c src/ufs/s3_listxml.c src/common/xml_scan.c src/s3/s3_reqxml.c
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xml_scan.h"
#include "s3/s3_reqxml.h"
#include "ufs/s3_listxml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
check_item(void *arg, const struct s3_list_item *it)
{
	size_t *count = arg;
	if (it->key_len > S3_LIST_KEY_MAX || it->key[it->key_len] != 0 ||
	    strlen(it->etag) >= S3_LIST_ETAG_MAX || it->size < 0 ||
	    (it->is_prefix && it->size != 0))
		abort();
	(*count)++;
	return 0;
}

static int
check_delete(void *arg, const char *key, size_t len, int has_version)
{
	size_t *count = arg;
	if (len > XML_TEXT_MAX || key[len] != 0 || strlen(key) != len ||
	    ++*count > S3_DELETE_MAX || (has_version != 0 && has_version != 1))
		abort();
	return 0;
}

static int
check_part(void *arg, int number, const char *etag, size_t len)
{
	int *count = arg;
	if (number < 1 || number > S3_COMPLETE_MAX || etag[len] != 0 ||
	    strlen(etag) != len || ++*count > S3_COMPLETE_MAX)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	size_t count = 0;
	struct s3_list_result res;
	int r = s3_listxml_parse(p, size, check_item, &count, &res);
	if (r != 0 && r != -5 /* -EIO */)
		abort();
	if (r == 0 && (strlen(res.next_token) >= S3_LIST_TOKEN_MAX ||
	    (res.is_truncated && !res.next_token[0])))
		abort();
	char code[64], msg[256];
	r = s3_errxml_parse(p, size, code, sizeof(code), msg, sizeof(msg));
	if ((r != 0 && r != -5) || strlen(code) >= sizeof(code) ||
	    strlen(msg) >= sizeof(msg))
		abort();
	char id[1024], etag[128], lm[64];
	struct s3_xml_field f[] = {{"UploadId", id, sizeof(id), 0},
	    {"ETag", etag, sizeof(etag), 0}, {"LastModified", lm, sizeof(lm), 0}};
	r = s3_resultxml_parse(p, size, "CompleteMultipartUploadResult", f, 3);
	if ((r != 0 && r != -5) || strlen(id) >= sizeof(id) ||
	    strlen(etag) >= sizeof(etag) || strlen(lm) >= sizeof(lm) ||
	    (r != 0 && (f[0].found || f[1].found || id[0] || etag[0])))
		abort();
	size_t dels = 0;
	int quiet = -1;
	r = s3_delete_parse(p, size, check_delete, &dels, &quiet);
	if ((r != 0 && r != -5) || (r == 0 && dels == 0) || (quiet != 0 && quiet != 1))
		abort();
	int parts = 0;
	r = s3_complete_parse(p, size, check_part, &parts);
	if ((r != 0 && r != -EIO) || (r == 0 && parts == 0))
		abort();
	free(p);
	return 0;
}
