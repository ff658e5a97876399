/*
 * test_s3_listxml.c: the ListBucketResult and Error parsers on documents
 * shaped like AWS's documentation examples and like s3rver's replies,
 * entity decoding, and rejection of truncated, malformed and hostile input
 * (every prefix of a valid document, DOCTYPE, deep nesting, over-long
 * text).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/vas.h"
#include "tap.h"
#include "common/xml_scan.h"
#include "ufs/s3_listxml.h"

struct got {
	int n;
	char key[16][S3_LIST_KEY_MAX + 1];
	int is_prefix[16];
	int64_t size[16], mtime[16];
	char etag[16][S3_LIST_ETAG_MAX];
	int stop_at; /* return 7 at this entry (1-based); 0: never */
};

static int
got_fn(void *arg, const struct s3_list_item *it)
{
	struct got *g = arg;
	if (g->n < 16) {
		memcpy(g->key[g->n], it->key, it->key_len + 1);
		g->is_prefix[g->n] = it->is_prefix;
		g->size[g->n] = it->size;
		g->mtime[g->n] = it->mtime;
		snprintf(g->etag[g->n], sizeof(g->etag[0]), "%s", it->etag);
	}
	g->n++;
	return g->stop_at && g->n == g->stop_at ? 7 : 0;
}

static int
parse(const char *doc, struct got *g, struct s3_list_result *res)
{
	memset(g, 0, sizeof(*g));
	return s3_listxml_parse(doc, strlen(doc), got_fn, g, res);
}

/* From the AWS ListObjectsV2 documentation (example 1), as printed. */
static const char aws_doc1[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "    <Name>bucket</Name>\n"
    "    <Prefix/>\n"
    "    <KeyCount>205</KeyCount>\n"
    "    <MaxKeys>1000</MaxKeys>\n"
    "    <IsTruncated>false</IsTruncated>\n"
    "    <Contents>\n"
    "        <Key>my-image.jpg</Key>\n"
    "        <LastModified>2009-10-12T17:50:30.000Z</LastModified>\n"
    "        <ETag>\"fba9dede5f27731c9771645a39863328\"</ETag>\n"
    "        <Size>434234</Size>\n"
    "        <StorageClass>STANDARD</StorageClass>\n"
    "    </Contents>\n"
    "    <Contents>\n"
    "        <Key>my-third-image.jpg</Key>\n"
    "        <LastModified>2009-10-12T17:50:30.000Z</LastModified>\n"
    "        <ETag>\"1b2cf535f27731c974343645a3985328\"</ETag>\n"
    "        <Size>64994</Size>\n"
    "        <StorageClass>STANDARD_IA</StorageClass>\n"
    "    </Contents>\n"
    "</ListBucketResult>\n";

/* AWS example with a delimiter, continuation and owners. */
static const char aws_doc2[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
    "  <Name>example-bucket</Name>\n"
    "  <Prefix>photos/2006/</Prefix>\n"
    "  <KeyCount>3</KeyCount>\n"
    "  <MaxKeys>1000</MaxKeys>\n"
    "  <Delimiter>/</Delimiter>\n"
    "  <IsTruncated>true</IsTruncated>\n"
    "  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
    "</NextContinuationToken>\n"
    "  <Contents>\n"
    "    <Key>photos/2006/index.html</Key>\n"
    "    <LastModified>2016-04-30T23:51:29.000Z</LastModified>\n"
    "    <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>\n"
    "    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>\n"
    "    <Size>0</Size>\n"
    "    <Owner>\n"
    "      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>\n"
    "      <DisplayName>mtd@amazon.com</DisplayName>\n"
    "    </Owner>\n"
    "    <StorageClass>STANDARD</StorageClass>\n"
    "  </Contents>\n"
    "  <CommonPrefixes>\n"
    "    <Prefix>photos/2006/February/</Prefix>\n"
    "  </CommonPrefixes>\n"
    "  <CommonPrefixes>\n"
    "    <Prefix>photos/2006/January/</Prefix>\n"
    "  </CommonPrefixes>\n"
    "</ListBucketResult>";

/* As s3rver 3.7 sends it: one line, entities in keys and ETags. */
static const char s3rver_doc[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://doc.s3.amazonaws.com/2006-03-01/\">"
    "<Name>bkt</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1"
    "</MaxKeys><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>"
    "<Contents><Key>dir/a&amp;b &lt;x&gt;.txt</Key><LastModified>"
    "2026-11-23T03:18:43.000Z</LastModified><ETag>&quot;"
    "9dd4e461268c8034f5c8564e155c67a6&quot;</ETag><Size>1</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents><CommonPrefixes>"
    "<Prefix>dir/</Prefix></CommonPrefixes></ListBucketResult>";

static const char s3rver_err[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<Error><Code>NoSuchKey</Code><Message>The specified key does not "
    "exist.</Message><Key>nokey</Key></Error>";

TEST(aws_doc_examples)
{
	struct got g;
	struct s3_list_result res;
	CHECK_EQ_INT(parse(aws_doc1, &g, &res), 0);
	CHECK_EQ_INT(g.n, 2);
	CHECK_EQ_STR(g.key[0], "my-image.jpg");
	CHECK_EQ_INT(g.size[0], 434234);
	CHECK_EQ_INT(g.mtime[0], 1255369830);
	CHECK_EQ_STR(g.etag[0], "fba9dede5f27731c9771645a39863328");
	CHECK_EQ_INT(g.is_prefix[0], 0);
	CHECK_EQ_STR(g.key[1], "my-third-image.jpg");
	CHECK_EQ_INT(g.size[1], 64994);
	CHECK_EQ_INT(res.is_truncated, 0);
	CHECK_EQ_INT(res.key_count, 205);
	CHECK_EQ_STR(res.next_token, "");

	CHECK_EQ_INT(parse(aws_doc2, &g, &res), 0);
	CHECK_EQ_INT(g.n, 3);
	CHECK_EQ_STR(g.key[0], "photos/2006/index.html");
	CHECK_EQ_INT(g.size[0], 0);
	CHECK_EQ_STR(g.etag[0], "d41d8cd98f00b204e9800998ecf8427e");
	CHECK_EQ_INT(g.mtime[0], 1462060289);
	CHECK_EQ_STR(g.key[1], "photos/2006/February/");
	CHECK_EQ_INT(g.is_prefix[1], 1);
	CHECK_EQ_STR(g.key[2], "photos/2006/January/");
	CHECK_EQ_INT(g.is_prefix[2], 1);
	CHECK_EQ_INT(res.is_truncated, 1);
	CHECK_EQ_STR(res.next_token,
	    "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	CHECK_EQ_INT(res.key_count, 3);
}

TEST(s3rver_shapes)
{
	struct got g;
	struct s3_list_result res;
	CHECK_EQ_INT(parse(s3rver_doc, &g, &res), 0);
	CHECK_EQ_INT(g.n, 2);
	CHECK_EQ_STR(g.key[0], "dir/a&b <x>.txt");
	CHECK_EQ_STR(g.etag[0], "9dd4e461268c8034f5c8564e155c67a6");
	CHECK_EQ_STR(g.key[1], "dir/");
	CHECK_EQ_INT(g.is_prefix[1], 1);

	char code[32], msg[128];
	CHECK_EQ_INT(s3_errxml_parse(s3rver_err, strlen(s3rver_err), code,
	    sizeof(code), msg, sizeof(msg)), 0);
	CHECK_EQ_STR(code, "NoSuchKey");
	CHECK_EQ_STR(msg, "The specified key does not exist.");
	/* truncated into small buffers */
	char c4[4], m8[8];
	CHECK_EQ_INT(s3_errxml_parse(s3rver_err, strlen(s3rver_err), c4,
	    sizeof(c4), m8, sizeof(m8)), 0);
	CHECK_EQ_STR(c4, "NoS");
	CHECK_EQ_STR(m8, "The spe");
	/* a ListBucketResult is not an Error, and vice versa */
	CHECK_EQ_INT(s3_errxml_parse(s3rver_doc, strlen(s3rver_doc), code,
	    sizeof(code), msg, sizeof(msg)), -EIO);
	CHECK_EQ_STR(code, "");
	CHECK_EQ_INT(parse(s3rver_err, &g, &res), -EIO);
	/* an AWS-style error with RequestId, HostId */
	static const char aws_err[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n"
	    "  <Code>SlowDown</Code>\n  <Message>Please reduce your request "
	    "rate.</Message>\n  <RequestId>4442587FB7D0A2F9</RequestId>\n"
	    "  <HostId>a+b/c=</HostId>\n</Error>\n";
	CHECK_EQ_INT(s3_errxml_parse(aws_err, strlen(aws_err), code,
	    sizeof(code), msg, sizeof(msg)), 0);
	CHECK_EQ_STR(code, "SlowDown");
	CHECK_EQ_STR(msg, "Please reduce your request rate.");
}

#define WRAP(contents)                                                        \
	"<ListBucketResult><IsTruncated>false</IsTruncated>" contents         \
	"</ListBucketResult>"

TEST(entities_and_syntax)
{
	struct got g;
	struct s3_list_result res;
	/* every predefined and numeric form; CDATA; comments; PI */
	CHECK_EQ_INT(parse(WRAP("<Contents><Key>&amp;&lt;&gt;&quot;&apos;"
	    "&#65;&#x42;&#x1F600;&#233;<![CDATA[<raw&>]]><!-- c --></Key>"
	    "<Size>5</Size></Contents>"), &g, &res), 0);
	CHECK_EQ_INT(g.n, 1);
	CHECK_EQ_STR(g.key[0],
	    "&<>\"'AB\xf0\x9f\x98\x80\xc3\xa9<raw&>");
	/* attributes, single quotes, spaces in tags, empty elements */
	CHECK_EQ_INT(parse("<?xml version='1.0'?><!-- x --><ListBucketResult "
	    "a='1' b = \"2\" ><Prefix/><Contents ><Key >k</Key ><Size>0</Size>"
	    "<ETag/></Contents></ListBucketResult >\n\n", &g, &res), 0);
	CHECK_EQ_INT(g.n, 1);
	CHECK_EQ_STR(g.key[0], "k");
	CHECK_EQ_STR(g.etag[0], "");
	CHECK_EQ_INT(g.mtime[0], 0);
	/* an empty CommonPrefixes/Prefix is given (the consumer judges) */
	CHECK_EQ_INT(parse(WRAP("<CommonPrefixes><Prefix></Prefix>"
	    "</CommonPrefixes>"), &g, &res), 0);
	CHECK_EQ_INT(g.n, 1);
	CHECK_EQ_STR(g.key[0], "");
	/* the callback stops the parse */
	memset(&g, 0, sizeof(g));
	g.stop_at = 1;
	const char *two = WRAP("<Contents><Key>a</Key><Size>1</Size>"
	    "</Contents><Contents><Key>b</Key><Size>1</Size></Contents>");
	CHECK_EQ_INT(s3_listxml_parse(two, strlen(two), got_fn, &g, &res), 7);
	CHECK_EQ_INT(g.n, 1);
}

TEST(malformed)
{
	struct got g;
	struct s3_list_result res;
	static const char *const bad[] = {
	    "",
	    "   ",
	    "garbage",
	    "<Error><Code>x</Code></Error>",
	    "<ListBucketResult>",
	    "<ListBucketResult></ListBucketResul>",
	    "<ListBucketResult></ListBucketResult><ListBucketResult/>",
	    "<ListBucketResult></ListBucketResult>junk",
	    "junk<ListBucketResult></ListBucketResult>",
	    "<!DOCTYPE x [<!ENTITY a \"b\">]><ListBucketResult/>",
	    "<ListBucketResult><a></b></ListBucketResult>",
	    "<ListBucketResult a=1></ListBucketResult>",
	    "<ListBucketResult a='1'b='2'></ListBucketResult>",
	    "<ListBucketResult a='<'></ListBucketResult>",
	    "<ListBucketResult><1a/></ListBucketResult>",
	    "<ListBucketResult><!-- open </ListBucketResult>",
	    "<ListBucketResult><?pi </ListBucketResult>",
	    "<ListBucketResult><x><![CDATA[ab</x></ListBucketResult>",
	    "<![CDATA[x]]><ListBucketResult/>",
	    WRAP("<Contents><Key>a&bogus;</Key><Size>1</Size></Contents>"),
	    WRAP("<Contents><Key>a&amp</Key><Size>1</Size></Contents>"),
	    WRAP("<Contents><Key>a&#0;</Key><Size>1</Size></Contents>"),
	    WRAP("<Contents><Key>a&#xD800;</Key><Size>1</Size></Contents>"),
	    WRAP("<Contents><Key>a&#x110000;</Key><Size>1</Size></Contents>"),
	    WRAP("<Contents><Key>a&#;</Key><Size>1</Size></Contents>"),
	    WRAP("<Contents><Key>a&#x;</Key><Size>1</Size></Contents>"),
	    WRAP("<Contents><Key>a&#12a;</Key><Size>1</Size></Contents>"),
	    WRAP("<Contents><Key>a\x01</Key><Size>1</Size></Contents>"),
	    WRAP("<Contents><Key>a<</Key><Size>1</Size></Contents>"),
	    WRAP("<Contents><Size>1</Size></Contents>"),
	    WRAP("<Contents><Key>a</Key></Contents>"),
	    WRAP("<Contents><Key>a</Key><Key>b</Key><Size>1</Size></Contents>"),
	    WRAP("<Contents><Key>a</Key><Size>-1</Size></Contents>"),
	    WRAP("<Contents><Key>a</Key><Size>1x</Size></Contents>"),
	    WRAP("<Contents><Key>a</Key><Size></Size></Contents>"),
	    WRAP("<Contents><Key>a</Key><Size>99999999999999999999</Size>"
		 "</Contents>"),
	    WRAP("<Contents><Key>a</Key><Size>1</Size><LastModified>yesterday"
		 "</LastModified></Contents>"),
	    WRAP("<CommonPrefixes></CommonPrefixes>"),
	    "<ListBucketResult><IsTruncated>maybe</IsTruncated>"
	    "</ListBucketResult>",
	    /* truncated, but no way to continue */
	    "<ListBucketResult><IsTruncated>true</IsTruncated>"
	    "</ListBucketResult>",
	    "<ListBucketResult><KeyCount>x</KeyCount></ListBucketResult>",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&g, 0, sizeof(g));
		int r = s3_listxml_parse(bad[i], strlen(bad[i]), got_fn, &g,
		    &res);
		if (r != -EIO)
			fprintf(stderr, "  accepted bad doc %zu: %s\n", i, bad[i]);
		CHECK_EQ_INT(r, -EIO);
	}
}

/* Every proper prefix of a valid document is rejected, and the parser
 * reads nothing past the given length (checked by ASan: each prefix is
 * copied into an exact-size heap block). */
TEST(truncated_documents)
{
	const char *docs[] = {aws_doc1, aws_doc2, s3rver_doc};
	for (size_t d = 0; d < ARRAY_SIZE(docs); d++) {
		size_t n = strlen(docs[d]);
		int accepted = 0;
		/* A prefix that only loses trailing whitespace is complete. */
		size_t complete = n;
		while (complete > 0 && (docs[d][complete - 1] == '\n' ||
		    docs[d][complete - 1] == ' '))
			complete--;
		for (size_t k = 0; k < complete; k++) {
			char *p = malloc(k ? k : 1);
			memcpy(p, docs[d], k);
			struct got g;
			struct s3_list_result res;
			memset(&g, 0, sizeof(g));
			if (s3_listxml_parse(p, k, got_fn, &g, &res) != -EIO)
				accepted++;
			free(p);
		}
		CHECK_EQ_INT(accepted, 0);
	}
}

TEST(limits)
{
	struct got g;
	struct s3_list_result res;
	/* nesting deeper than XML_MAX_DEPTH */
	char deep[4096] = "<ListBucketResult>";
	for (int i = 0; i < XML_MAX_DEPTH + 1; i++)
		strcat(deep, "<a>");
	for (int i = 0; i < XML_MAX_DEPTH + 1; i++)
		strcat(deep, "</a>");
	strcat(deep, "</ListBucketResult>");
	CHECK_EQ_INT(parse(deep, &g, &res), -EIO);

	/* a key of exactly S3_LIST_KEY_MAX bytes is fine, one more is not */
	size_t cap = S3_LIST_KEY_MAX + 200;
	char *doc = malloc(cap);
	char *key = malloc(S3_LIST_KEY_MAX + 2);
	memset(key, 'k', S3_LIST_KEY_MAX + 1);
	key[S3_LIST_KEY_MAX] = 0;
	snprintf(doc, cap, WRAP("<Contents><Key>%s</Key><Size>1</Size>"
	    "</Contents>"), key);
	CHECK_EQ_INT(parse(doc, &g, &res), 0);
	CHECK_EQ_INT(strlen(g.key[0]), S3_LIST_KEY_MAX);
	key[S3_LIST_KEY_MAX] = 'k';
	key[S3_LIST_KEY_MAX + 1] = 0;
	snprintf(doc, cap, WRAP("<Contents><Key>%s</Key><Size>1</Size>"
	    "</Contents>"), key);
	CHECK_EQ_INT(parse(doc, &g, &res), -EIO);
	/* an over-long element name */
	char name[XML_NAME_MAX + 2];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	snprintf(doc, cap, WRAP("<%s/>"), name);
	CHECK_EQ_INT(parse(doc, &g, &res), -EIO);
	name[XML_NAME_MAX] = 0;
	snprintf(doc, cap, WRAP("<%s/>"), name);
	CHECK_EQ_INT(parse(doc, &g, &res), 0);
	/* an over-long ETag */
	char etag[S3_LIST_ETAG_MAX + 1];
	memset(etag, 'e', sizeof(etag) - 1);
	etag[sizeof(etag) - 1] = 0;
	snprintf(doc, cap, WRAP("<Contents><Key>k</Key><Size>1</Size>"
	    "<ETag>%s</ETag></Contents>"), etag);
	CHECK_EQ_INT(parse(doc, &g, &res), -EIO);
	free(doc);
	free(key);
}

/* The results of writes: AWS's documented shapes, and what is refused. */
TEST(write_results)
{
	char id[64], etag[40], lm[32];
	struct s3_xml_field init[] = {{"UploadId", id, sizeof(id), 0}};
	static const char doc1[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/"
	    "doc/2006-03-01/\"><Bucket>example-bucket</Bucket><Key>example-"
	    "object</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5t"
	    "MnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>";
	CHECK_EQ_INT(s3_resultxml_parse(doc1, strlen(doc1),
	    "InitiateMultipartUploadResult", init, 1), 0);
	CHECK_EQ_INT(init[0].found, 1);
	CHECK_EQ_STR(id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVw"
	    "bG9hZA");
	/* the quotes of an ETag come escaped */
	struct s3_xml_field done[] = {{"ETag", etag, sizeof(etag), 0}};
	static const char doc2[] = "<CompleteMultipartUploadResult><Location>"
	    "http://b.s3.amazonaws.com/k</Location><Bucket>b</Bucket><Key>k"
	    "</Key><ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>"
	    "</CompleteMultipartUploadResult>";
	CHECK_EQ_INT(s3_resultxml_parse(doc2, strlen(doc2),
	    "CompleteMultipartUploadResult", done, 1), 0);
	CHECK_EQ_STR(etag, "\"3858f62230ac3c915f300c664312c11f-9\"");
	struct s3_xml_field copy[] = {{"ETag", etag, sizeof(etag), 0},
	    {"LastModified", lm, sizeof(lm), 0}};
	static const char doc3[] = "<CopyObjectResult><LastModified>"
	    "2009-10-12T17:50:30.000Z</LastModified><ETag>\"9b2cf535f27731c974"
	    "343645a3985328\"</ETag></CopyObjectResult>";
	CHECK_EQ_INT(s3_resultxml_parse(doc3, strlen(doc3), "CopyObjectResult",
	    copy, 2), 0);
	CHECK_EQ_STR(lm, "2009-10-12T17:50:30.000Z");
	CHECK_EQ_INT(copy[0].found && copy[1].found, 1);
	/* a field absent is not found; nested ones are not the root's */
	static const char doc4[] = "<CopyObjectResult><X><ETag>e</ETag></X>"
	    "</CopyObjectResult>";
	CHECK_EQ_INT(s3_resultxml_parse(doc4, strlen(doc4), "CopyObjectResult",
	    copy, 2), 0);
	CHECK_EQ_INT(copy[0].found, 0);
	CHECK_EQ_STR(etag, "");
	/* another root (an Error in a 200), a repeat, too long, malformed */
	static const char err[] = "<Error><Code>InternalError</Code></Error>";
	CHECK_EQ_INT(s3_resultxml_parse(err, strlen(err), "CopyObjectResult",
	    copy, 2), -EIO);
	static const char rep[] = "<CopyPartResult><ETag>a</ETag><ETag>b</ETag>"
	    "</CopyPartResult>";
	CHECK_EQ_INT(s3_resultxml_parse(rep, strlen(rep), "CopyPartResult",
	    copy, 1), -EIO);
	char small[4];
	struct s3_xml_field tiny[] = {{"UploadId", small, sizeof(small), 0}};
	CHECK_EQ_INT(s3_resultxml_parse(doc1, strlen(doc1),
	    "InitiateMultipartUploadResult", tiny, 1), -EIO);
	CHECK_EQ_STR(small, "");
	CHECK_EQ_INT(s3_resultxml_parse(doc1, strlen(doc1) - 5,
	    "InitiateMultipartUploadResult", init, 1), -EIO);
	CHECK_EQ_INT(s3_resultxml_parse("", 0, "CopyObjectResult", copy, 2),
	    -EIO);
	static const char nul[] = "<CopyPartResult><ETag>a&#0;b</ETag>"
	    "</CopyPartResult>";
	CHECK_EQ_INT(s3_resultxml_parse(nul, strlen(nul), "CopyPartResult",
	    copy, 1), -EIO);
}

int
main(void)
{
	RUN(aws_doc_examples);
	RUN(s3rver_shapes);
	RUN(entities_and_syntax);
	RUN(malformed);
	RUN(truncated_documents);
	RUN(limits);
	RUN(write_results);
	TAP_DONE();
}
