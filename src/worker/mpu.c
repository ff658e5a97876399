/*
 * mpu.c: S3 multipart uploads staged on local disk (mpu.h).
 *
 * Threads: any request thread.  No lock is held across I/O: the directory
 * is the state, and every change of it is one rename (a part into place,
 * an upload claimed by its complete or abort), so concurrent requests on
 * one upload see it whole or not at all.  `count` (uploads in progress)
 * is a relaxed atomic, exact enough for its limit.
 */
#include "mpu.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/crypto.h"
#include "../common/dbuf.h"
#include "../common/log.h"
#include "../common/util.h"

#define HEAD_LEN 32
static const char MAGIC[8] = "FMPUPRT1";
#define INFO_MAX (64 << 10)
#define TICK_SECS 5
#define COPY_BUF (1 << 20)

struct mpu {
	char *dir;
	struct objput *op;
	int count; /* uploads in progress */
	char tag[MPU_TAG_LEN + 1]; /* the ids' first digits, or "" */
};

struct mpu_part {
	struct mpu *u;
	char tmp[PATH_MAX], dst[PATH_MAX];
	int fd;
	int64_t size;
	EVP_MD_CTX *md5;
	int err; /* sticky */
};

int
mpu_id_valid(const char *s)
{
	size_t i;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == MPU_ID_LEN;
}

/* Removes an upload directory (or a claimed one) and what is in it. */
static void
rm_upload(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(path);
}

/* An upload's info, parsed in place in buf: mount, key, initiated and the
 * header lines (name and value pointers into buf). */
struct info {
	char buf[INFO_MAX + 1];
	const char *mount, *key;
	int64_t initiated;
	struct ufs_opt h[64];
	int nh;
};

static int
info_read(const char *path, struct info *in)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, in->buf, INFO_MAX);
	close(fd);
	if (n < 0)
		return -EIO;
	in->buf[n] = 0;
	char *save = NULL, *line = strtok_r(in->buf, "\n", &save);
	if (!line || strcmp(line, "ferry-mpu 1") != 0)
		return -EIO;
	in->mount = strtok_r(NULL, "\n", &save);
	in->key = strtok_r(NULL, "\n", &save);
	char *ini = strtok_r(NULL, "\n", &save);
	if (!in->mount || !in->key || !ini)
		return -EIO;
	in->initiated = strtoll(ini, NULL, 10);
	in->nh = 0;
	while ((line = strtok_r(NULL, "\n", &save)) && in->nh < 64) {
		char *colon = strstr(line, ": ");
		if (!colon)
			return -EIO;
		*colon = 0;
		in->h[in->nh++] = (struct ufs_opt){line, colon + 2};
	}
	return 0;
}

/* The upload id for m/key: 0, -ENOENT (none, or another key's). */
static int
upload_check(struct mpu *u, const struct mount *m, const char *key,
    const char *id, struct info *in)
{
	if (!mpu_id_valid(id))
		return -ENOENT;
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s/info", u->dir, id);
	if (info_read(p, in) < 0 || strcmp(in->mount, m->name) != 0 ||
	    strcmp(in->key, key) != 0)
		return -ENOENT;
	return 0;
}

struct mpu *
mpu_open(const char *dir, struct objput *op, char **err)
{
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || chmod(dir, 0700) < 0) {
		if (asprintf(err, "cannot create %s: %s", dir, strerror(errno)) < 0)
			*err = NULL;
		return NULL;
	}
	struct mpu *u = calloc(1, sizeof(*u));
	if (!u || !(u->dir = strdup(dir))) {
		free(u);
		*err = strdup("out of memory");
		return NULL;
	}
	u->op = op;
	/* Sweep: claimed uploads (their complete or abort died with the
	 * process: an abort is finished; a complete had not answered, so the
	 * upload goes back), temporary parts, uploads without info. */
	DIR *d = opendir(dir);
	struct dirent *e;
	int swept = 0;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[PATH_MAX], q[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		size_t l = strlen(e->d_name);
		if (l == MPU_ID_LEN + 5 && strcmp(e->d_name + MPU_ID_LEN, ".busy") == 0) {
			snprintf(q, sizeof(q), "%s/%.*s", dir, MPU_ID_LEN, e->d_name);
			if (rename(p, q) < 0)
				rm_upload(p);
			snprintf(p, sizeof(p), "%s", q);
		} else if (!mpu_id_valid(e->d_name)) {
			continue; /* not ours */
		}
		DIR *pd = opendir(p);
		struct dirent *pe;
		while (pd && (pe = readdir(pd)))
			if (strncmp(pe->d_name, "tmp.", 4) == 0) {
				snprintf(q, sizeof(q), "%s/%s", p, pe->d_name);
				unlink(q);
				swept++;
			}
		if (pd)
			closedir(pd);
		snprintf(q, sizeof(q), "%s/info", p);
		if (access(q, F_OK) < 0) {
			rm_upload(p);
			swept++;
			continue;
		}
		u->count++;
	}
	if (d)
		closedir(d);
	LOG_INFO("mpu: %s: %d multipart uploads in progress, %d leftovers swept",
	    dir, u->count, swept);
	return u;
}

void
mpu_close(struct mpu **up)
{
	struct mpu *u = *up;
	if (!u)
		return;
	*up = NULL;
	free(u->dir);
	free(u);
}

void
mpu_set_tag(struct mpu *u, const char *worker_id)
{
	size_t n = strlen(worker_id);
	if (n >= MPU_TAG_LEN && strspn(worker_id, "0123456789abcdef") >= MPU_TAG_LEN)
		snprintf(u->tag, sizeof(u->tag), "%.*s", MPU_TAG_LEN, worker_id);
}

int
mpu_holds(struct mpu *u, const char *id)
{
	char p[PATH_MAX];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/%s", u->dir, id);
	if (stat(p, &sb) == 0)
		return 1;
	snprintf(p, sizeof(p), "%s/%s.busy", u->dir, id);
	return stat(p, &sb) == 0;
}

int
mpu_create(struct mpu *u, const struct mount *m, const char *key,
    const struct ufs_opt *headers, int nheaders, char id[MPU_ID_LEN + 1])
{
	if (__atomic_load_n(&u->count, __ATOMIC_RELAXED) >= MPU_UPLOADS_MAX)
		return -EAGAIN;
	unsigned char rnd[MPU_ID_LEN / 2];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	hex_encode(rnd, sizeof(rnd), id);
	if (u->tag[0])
		memcpy(id, u->tag, MPU_TAG_LEN); /* which worker holds it */
	char p[PATH_MAX], t[PATH_MAX], q[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", u->dir, id);
	if (mkdir(p, 0700) < 0)
		return -errno;
	struct dbuf b;
	dbuf_init(&b, INFO_MAX);
	dbuf_printf(&b, "ferry-mpu 1\n%s\n%s\n%lld\n", m->name, key, (long long)time(NULL));
	for (int i = 0; i < nheaders; i++)
		dbuf_printf(&b, "%s: %s\n", headers[i].key, headers[i].value);
	int r = dbuf_error(&b) ? -E2BIG : 0;
	snprintf(t, sizeof(t), "%s/tmp.info", p);
	snprintf(q, sizeof(q), "%s/info", p);
	int fd = r ? -1 : open(t, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (!r && fd < 0)
		r = -errno;
	if (!r)
		r = write_full(fd, b.p, b.len, 0);
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	if (!r && rename(t, q) < 0)
		r = -errno;
	dbuf_free(&b);
	if (r < 0) {
		rm_upload(p);
		return r;
	}
	__atomic_add_fetch(&u->count, 1, __ATOMIC_RELAXED);
	return 0;
}

int
mpu_part_begin(struct mpu *u, const struct mount *m, const char *key,
    const char *id, int number, struct mpu_part **out)
{
	*out = NULL;
	if (number < 1 || number > MPU_PART_MAX)
		return -EINVAL;
	struct info *in = malloc(sizeof(*in));
	if (!in)
		return -ENOMEM;
	int r = upload_check(u, m, key, id, in);
	free(in);
	if (r < 0)
		return r;
	struct mpu_part *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->u = u;
	unsigned char rnd[8];
	char hex[17];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		free(p);
		return -EIO;
	}
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(p->tmp, sizeof(p->tmp), "%s/%s/tmp.%s", u->dir, id, hex);
	snprintf(p->dst, sizeof(p->dst), "%s/%s/%05d", u->dir, id, number);
	p->fd = open(p->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	p->md5 = EVP_MD_CTX_new();
	if (p->fd < 0 || !p->md5 || EVP_DigestInit_ex(p->md5, EVP_md5(), NULL) != 1) {
		r = p->fd < 0 ? (errno == ENOENT ? -ENOENT : -errno) : -ENOMEM;
		if (p->fd >= 0) {
			close(p->fd);
			unlink(p->tmp);
		}
		EVP_MD_CTX_free(p->md5);
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

int
mpu_part_write(struct mpu_part *p, const void *buf, size_t n)
{
	if (p->err)
		return p->err;
	if ((int64_t)n > MPU_PART_SIZE_MAX - p->size)
		return p->err = -EFBIG;
	int r = write_full(p->fd, buf, n, HEAD_LEN + p->size);
	if (r < 0)
		return p->err = r;
	if (EVP_DigestUpdate(p->md5, buf, n) != 1)
		return p->err = -EIO;
	p->size += (int64_t)n;
	return 0;
}

static void
part_free(struct mpu_part *p)
{
	if (p->fd >= 0)
		close(p->fd);
	EVP_MD_CTX_free(p->md5);
	free(p);
}

void
mpu_part_abort(struct mpu_part **pp)
{
	struct mpu_part *p = *pp;
	if (!p)
		return;
	*pp = NULL;
	unlink(p->tmp);
	part_free(p);
}

int
mpu_part_commit(struct mpu_part **pp, char md5hex[33])
{
	struct mpu_part *p = *pp;
	unsigned char head[HEAD_LEN] = {0}, md[16];
	unsigned int ml = 0;
	int r = p->err;
	if (!r && (EVP_DigestFinal_ex(p->md5, md, &ml) != 1 || ml != 16))
		r = -EIO;
	if (!r) {
		memcpy(head, MAGIC, 8);
		memcpy(head + 8, md, 16);
		for (int i = 0; i < 8; i++)
			head[24 + i] = (unsigned char)((uint64_t)p->size >> (8 * i));
		r = write_full(p->fd, head, HEAD_LEN, 0);
	}
	if (!r && fdatasync(p->fd) < 0)
		r = -errno;
	/* The upload was completed or aborted meanwhile: -ENOENT. */
	if (!r && rename(p->tmp, p->dst) < 0)
		r = -errno;
	if (r < 0) {
		mpu_part_abort(pp);
		return r;
	}
	hex_encode(md, 16, md5hex);
	*pp = NULL;
	part_free(p);
	return 0;
}

/* Part file path's head: 0 with md5 and size, or -errno. */
static int
part_head(int fd, unsigned char md5[16], int64_t *size)
{
	unsigned char h[HEAD_LEN];
	if (pread(fd, h, HEAD_LEN, 0) != HEAD_LEN || memcmp(h, MAGIC, 8) != 0)
		return -EIO;
	memcpy(md5, h + 8, 16);
	uint64_t s = 0;
	for (int i = 0; i < 8; i++)
		s |= (uint64_t)h[24 + i] << (8 * i);
	*size = (int64_t)s;
	return 0;
}

/* Claims id: renames it to id.busy.  0 or -ENOENT. */
static int
claim(struct mpu *u, const char *id, char busy[PATH_MAX], char live[PATH_MAX])
{
	snprintf(live, PATH_MAX, "%s/%s", u->dir, id);
	snprintf(busy, PATH_MAX, "%s/%s.busy", u->dir, id);
	return rename(live, busy) < 0 ? -ENOENT : 0;
}

int
mpu_abort(struct mpu *u, const struct mount *m, const char *key, const char *id)
{
	struct info *in = malloc(sizeof(*in));
	if (!in)
		return -ENOMEM;
	int r = upload_check(u, m, key, id, in);
	free(in);
	char busy[PATH_MAX], live[PATH_MAX];
	if (r == 0)
		r = claim(u, id, busy, live);
	if (r < 0)
		return r;
	rm_upload(busy);
	__atomic_sub_fetch(&u->count, 1, __ATOMIC_RELAXED);
	return 0;
}

int
mpu_complete(struct mpu *u, struct mount *m, const char *key,
    const char *id, const struct mpu_want *want, int nwant,
    const struct ufs_put_opts *cond, const struct mpu_progress *pr,
    struct ufs_stat *st, char mpu_etag[48], int *bad)
{
	memset(st, 0, sizeof(*st));
	*bad = 0;
	struct info *in = malloc(sizeof(*in));
	int *fds = calloc((size_t)(nwant > 0 ? nwant : 1), sizeof(int));
	int64_t *sizes = calloc((size_t)(nwant > 0 ? nwant : 1), sizeof(int64_t));
	char *buf = NULL;
	int r = in && fds && sizes ? 0 : -ENOMEM;
	for (int i = 0; i < nwant && fds; i++)
		fds[i] = -1;
	if (r == 0)
		r = upload_check(u, m, key, id, in);
	char busy[PATH_MAX], live[PATH_MAX];
	int claimed = 0;
	if (r == 0 && (r = claim(u, id, busy, live)) == 0)
		claimed = 1;
	/* Check every part first: nothing is written unless all are right. */
	EVP_MD_CTX *all = r == 0 ? EVP_MD_CTX_new() : NULL;
	if (r == 0 && (!all || EVP_DigestInit_ex(all, EVP_md5(), NULL) != 1))
		r = -ENOMEM;
	int64_t total = 0;
	for (int i = 1; r == 0 && i < nwant; i++)
		if (want[i].number <= want[i - 1].number)
			r = -EDOM; /* the list's order, before any part */
	for (int i = 0; r == 0 && i < nwant; i++) {
		char p[PATH_MAX + 16], hex[33];
		unsigned char md[16];
		snprintf(p, sizeof(p), "%s/%05d", busy, want[i].number);
		fds[i] = want[i].number >= 1 && want[i].number <= MPU_PART_MAX ?
		    open(p, O_RDONLY | O_CLOEXEC) : -1;
		if (fds[i] < 0 || part_head(fds[i], md, &sizes[i]) < 0) {
			*bad = want[i].number;
			r = -EINVAL;
			break;
		}
		hex_encode(md, 16, hex);
		if (strcasecmp(hex, want[i].etag) != 0) {
			*bad = want[i].number;
			r = -EINVAL;
			break;
		}
		if (i < nwant - 1 && sizes[i] < MPU_PART_MIN) {
			*bad = want[i].number;
			r = -EMSGSIZE;
			break;
		}
		EVP_DigestUpdate(all, md, 16);
		total += sizes[i];
	}
	if (r == 0 && nwant == 0)
		r = -EINVAL;
	if (r == 0) {
		unsigned char md[16];
		unsigned int ml = 0;
		char hex[33];
		EVP_DigestFinal_ex(all, md, &ml);
		hex_encode(md, 16, hex);
		snprintf(mpu_etag, 48, "%s-%d", hex, nwant);
	}
	EVP_MD_CTX_free(all);
	struct objput_w *w = NULL;
	if (r == 0) {
		struct ufs_put_opts o = *cond;
		o.size = total;
		o.headers = in->h;
		o.nheaders = in->nh;
		o.parts = sizes; /* the store's parts, where it writes in parts */
		o.nparts = nwant;
		r = objput_begin(u->op, m, key, &o, &w);
	}
	if (r == 0 && !(buf = malloc(COPY_BUF)))
		r = -ENOMEM;
	if (r == 0 && pr && pr->started)
		pr->started(pr->arg);
	int64_t last_tick = now_ms();
	for (int i = 0; r == 0 && i < nwant; i++) {
		for (int64_t off = 0; r == 0 && off < sizes[i];) {
			size_t n = sizes[i] - off < COPY_BUF ? (size_t)(sizes[i] - off) : COPY_BUF;
			ssize_t k = pread(fds[i], buf, n, HEAD_LEN + off);
			if (k <= 0) {
				r = k < 0 ? -errno : -EIO;
				break;
			}
			r = objput_write(w, buf, (size_t)k);
			off += k;
			if (pr && pr->tick && now_ms() - last_tick >= TICK_SECS * 1000) {
				pr->tick(pr->arg);
				last_tick = now_ms();
			}
		}
	}
	if (w && r == 0)
		r = objput_commit(&w, st);
	else
		objput_abort(&w);
	for (int i = 0; fds && i < nwant; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (claimed && r == 0) {
		rm_upload(busy);
		__atomic_sub_fetch(&u->count, 1, __ATOMIC_RELAXED);
	} else if (claimed && rename(busy, live) < 0) {
		LOG_WARN("mpu: cannot give back upload %s: %s", id, strerror(errno));
	}
	free(buf);
	free(sizes);
	free(fds);
	free(in);
	return r;
}

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

int
mpu_list_parts(struct mpu *u, const struct mount *m, const char *key,
    const char *id, int marker, int max, mpu_part_fn fn, void *arg,
    int *truncated)
{
	*truncated = 0;
	struct info *in = malloc(sizeof(*in));
	if (!in)
		return -ENOMEM;
	int r = upload_check(u, m, key, id, in);
	free(in);
	if (r < 0)
		return r;
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", u->dir, id);
	DIR *d = opendir(p);
	if (!d)
		return -ENOENT;
	/* At most MPU_PART_MAX numbers: the bound of this array. */
	int *nums = malloc(MPU_PART_MAX * sizeof(int)), n = 0;
	struct dirent *e;
	while (nums && (e = readdir(d)) && n < MPU_PART_MAX) {
		char *end;
		long v = strtol(e->d_name, &end, 10);
		if (strlen(e->d_name) == 5 && *end == 0 && v > marker && v <= MPU_PART_MAX)
			nums[n++] = (int)v;
	}
	closedir(d);
	if (!nums)
		return -ENOMEM;
	qsort(nums, (size_t)n, sizeof(int), cmp_int);
	r = 0;
	for (int i = 0; i < n && r == 0; i++) {
		if (i == max) {
			*truncated = 1;
			break;
		}
		char q[PATH_MAX + 16];
		snprintf(q, sizeof(q), "%s/%05d", p, nums[i]);
		int fd = open(q, O_RDONLY | O_CLOEXEC);
		struct mpu_part_info pi = {.number = nums[i]};
		unsigned char md[16];
		struct stat sb;
		if (fd < 0)
			continue; /* replaced or claimed meanwhile */
		if (part_head(fd, md, &pi.size) == 0 && fstat(fd, &sb) == 0) {
			pi.mtime = sb.st_mtime;
			hex_encode(md, 16, pi.etag);
			r = fn(arg, &pi);
		}
		close(fd);
	}
	free(nums);
	return r;
}

struct up {
	char *key;
	char id[MPU_ID_LEN + 1];
	int64_t initiated;
};

static int
cmp_up(const void *a, const void *b)
{
	const struct up *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : strcmp(x->id, y->id);
}

int
mpu_list_uploads(struct mpu *u, const struct mount *m, const char *prefix,
    const char *key_marker, const char *id_marker, int max, mpu_upload_fn fn,
    void *arg, int *truncated)
{
	*truncated = 0;
	DIR *d = opendir(u->dir);
	if (!d)
		return -errno;
	struct info *in = malloc(sizeof(*in));
	struct up *ups = calloc(MPU_UPLOADS_MAX, sizeof(*ups));
	int n = 0, r = in && ups ? 0 : -ENOMEM;
	size_t pl = strlen(prefix);
	struct dirent *e;
	while (r == 0 && (e = readdir(d)) && n < MPU_UPLOADS_MAX) {
		if (!mpu_id_valid(e->d_name))
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s/info", u->dir, e->d_name);
		if (info_read(p, in) < 0 || strcmp(in->mount, m->name) != 0 ||
		    strncmp(in->key, prefix, pl) != 0)
			continue;
		int c = key_marker[0] ? strcmp(in->key, key_marker) : 1;
		if (c < 0 || (c == 0 && (!id_marker[0] || strcmp(e->d_name, id_marker) <= 0)))
			continue;
		if (!(ups[n].key = strdup(in->key))) {
			r = -ENOMEM;
			break;
		}
		snprintf(ups[n].id, sizeof(ups[n].id), "%s", e->d_name);
		ups[n].initiated = in->initiated;
		n++;
	}
	closedir(d);
	if (r == 0)
		qsort(ups, (size_t)n, sizeof(*ups), cmp_up);
	for (int i = 0; r == 0 && i < n; i++) {
		if (i == max) {
			*truncated = 1;
			break;
		}
		struct mpu_upload_info ui = {.key = ups[i].key, .initiated = ups[i].initiated};
		memcpy(ui.id, ups[i].id, sizeof(ui.id));
		r = fn(arg, &ui);
	}
	for (int i = 0; ups && i < n; i++)
		free(ups[i].key);
	free(ups);
	free(in);
	return r;
}
