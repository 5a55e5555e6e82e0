/*-------------------------------------------------------------------------
 *
 * store.c
 *	  Checkpoint stores: local files, S3 (SigV4), Azure Blob (SharedKey or
 *	  SAS) and plain HTTP, selected by jobq.checkpoint_url.
 *
 * Keys are built here from uuids and a unit number only, under a prefix
 * that comes from the superuser-only URL setting, so nothing a client passes
 * can steer a path or URL.  A checkpoint is visible only whole: the file
 * store writes a temporary file, fsyncs it and renames it into place; the
 * remote stores upload in one PUT.  Remote operations retry transient
 * failures (no answer, 408, 429, 5xx) jobq.store_retries times with
 * exponential backoff, then raise JOBQ_ERRCODE_STORE.  Callers never hold a
 * transaction open across these calls (except the SQL function
 * jobq.checkpoint(), whose caller owns the transaction).
 *
 * Credentials are superuser-only settings (GUC_SUPERUSER_ONLY), never
 * written to the log or to error messages by this file.
 *
 *-------------------------------------------------------------------------
 */
#include "jobq.h"

#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/file_perm.h"
#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/resowner.h"

#include "http.h"
#include "shared.h"
#include "store.h"

typedef enum StoreKind
{
	STORE_FILE,
	STORE_S3,
	STORE_AZURE,
	STORE_HTTP
} StoreKind;

struct JobqStore
{
	StoreKind	kind;
	char	   *dir;			/* file: base directory */
	char	   *base_url;		/* remote: URL that keys are appended to */
	char	   *uri_base;		/* what URIs of this store start with */
	char	   *prefix;			/* "" or "a/b/" */
	char	   *account;		/* azure */
	bool		no_headers;		/* http: a URI outside the configured store */
};

/* settings */
static char *checkpoint_url = NULL;
static char *s3_endpoint = NULL;
static char *s3_region = NULL;
static char *s3_access_key_id = NULL;
static char *s3_secret_access_key = NULL;
static char *azure_endpoint = NULL;
static char *azure_account_key = NULL;
static char *azure_sas_token = NULL;
static char *http_store_headers = NULL;
static int	store_timeout_ms = 30000;
static int	store_retries = 3;

#define SECRET_FLAGS (GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE)

void
jobq_store_define_settings(void)
{
	DefineCustomStringVariable("jobq.checkpoint_url",
							   "Where unit checkpoints go: empty for $PGDATA/jobq_checkpoints, file:///dir, s3://bucket/prefix, azure://account/container/prefix or http(s)://host/prefix.",
							   NULL, &checkpoint_url, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.s3_endpoint", "S3 endpoint URL (default: AWS for jobq.s3_region).",
							   NULL, &s3_endpoint, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.s3_region", "S3 region used for SigV4 signing.",
							   NULL, &s3_region, "us-east-1", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.s3_access_key_id", "S3 access key id.",
							   NULL, &s3_access_key_id, "", PGC_SUSET, SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.s3_secret_access_key", "S3 secret access key.",
							   NULL, &s3_secret_access_key, "", PGC_SUSET, SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.azure_endpoint", "Azure Blob endpoint URL (default: https://<account>.blob.core.windows.net).",
							   NULL, &azure_endpoint, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.azure_account_key", "Azure storage account key (SharedKey).",
							   NULL, &azure_account_key, "", PGC_SUSET, SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.azure_sas_token", "Azure SAS token, used instead of the account key.",
							   NULL, &azure_sas_token, "", PGC_SUSET, SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomStringVariable("jobq.http_store_headers", "JSON object of headers sent to an http(s) checkpoint store.",
							   NULL, &http_store_headers, "", PGC_SUSET, SECRET_FLAGS, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.store_timeout", "Timeout of one checkpoint store request.",
							NULL, &store_timeout_ms, 30000, 100, 3600 * 1000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("jobq.store_retries", "Retries of a failed checkpoint store request.",
							NULL, &store_retries, 3, 0, 100, PGC_SUSET, 0, NULL, NULL, NULL);
}

/* ---- helpers ---- */

static const char hexd[] = "0123456789abcdef";

/*
 * With OpenSSL, hash contexts are tracked by the current resource owner, and
 * the worker hashes between transactions, where there is none: lend it one.
 */
static ResourceOwner hash_owner = NULL;

/* Make sure there is a current resource owner; returns the one to restore. */
static ResourceOwner
lend_owner(void)
{
	ResourceOwner save = CurrentResourceOwner;

	if (save == NULL)
	{
		if (hash_owner == NULL)
			hash_owner = ResourceOwnerCreate(NULL, "jobq hashing");
		CurrentResourceOwner = hash_owner;
	}
	return save;
}

void
jobq_sha256_hex(const char *data, size_t len, char *out)
{
	ResourceOwner save = lend_owner();
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	bool		ok;

	ctx = pg_cryptohash_create(PG_SHA256);
	ok = ctx != NULL && pg_cryptohash_init(ctx) == 0 &&
		pg_cryptohash_update(ctx, (const uint8 *) data, len) == 0 &&
		pg_cryptohash_final(ctx, digest, sizeof(digest)) == 0;
	pg_cryptohash_free(ctx);
	CurrentResourceOwner = save;
	if (!ok)
		elog(ERROR, "jobq: could not compute sha256");
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
	{
		out[2 * i] = hexd[digest[i] >> 4];
		out[2 * i + 1] = hexd[digest[i] & 0x0F];
	}
	out[64] = '\0';
}

static void pg_attribute_noreturn()
bad_url(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("jobq.checkpoint_url \"%s\" is not usable: %s", checkpoint_url, why),
			 errhint("Use file:///dir, s3://bucket/prefix, azure://account/container/prefix or http(s)://host/prefix.")));
}

/* Prefixes and names come from the superuser's URL; keep them plain anyway. */
static bool
plain_path(const char *s)
{
	for (; *s; s++)
		if (!(isalnum((unsigned char) *s) || strchr("-._/", *s)))
			return false;
	return true;
}

/* "a/b" -> "a/b/", "" -> "", trimming slashes */
static char *
normalize_prefix(const char *p)
{
	size_t		len;

	while (*p == '/')
		p++;
	len = strlen(p);
	while (len > 0 && p[len - 1] == '/')
		len--;
	if (len == 0)
		return "";
	if (strstr(p, "..") != NULL || !plain_path(p))
		bad_url("the prefix may only hold letters, digits, '-', '.', '_' and '/', and no '..'");
	return psprintf("%.*s/", (int) len, p);
}

static char *
trim_slash(const char *s)
{
	size_t		len = strlen(s);

	while (len > 0 && s[len - 1] == '/')
		len--;
	return pnstrdup(s, len);
}

JobqStore *
jobq_store_open(void)
{
	JobqStore  *st = palloc0(sizeof(JobqStore));
	const char *url = checkpoint_url ? checkpoint_url : "";

	st->prefix = "";
	if (url[0] == '\0')
	{
		st->kind = STORE_FILE;
		st->dir = psprintf("%s/jobq_checkpoints", DataDir);
		st->uri_base = psprintf("file://%s/", st->dir);
	}
	else if (strncmp(url, "file://", 7) == 0)
	{
		st->kind = STORE_FILE;
		if (url[7] != '/')
			bad_url("a file URL needs an absolute path, as in file:///var/lib/jobq");
		st->dir = trim_slash(url + 7);
		if (strstr(st->dir, "..") != NULL)
			bad_url("the path may not contain '..'");
		st->uri_base = psprintf("file://%s/", st->dir);
	}
	else if (strncmp(url, "s3://", 5) == 0)
	{
		const char *bucket = url + 5;
		const char *slash = strchr(bucket, '/');
		char	   *name = slash ? pnstrdup(bucket, slash - bucket) : pstrdup(bucket);

		if (name[0] == '\0' || !plain_path(name) || strchr(name, '/'))
			bad_url("the bucket name is missing or not plain");
		st->kind = STORE_S3;
		st->prefix = normalize_prefix(slash ? slash : "");
		if (s3_endpoint && s3_endpoint[0])
			st->base_url = psprintf("%s/%s/", trim_slash(s3_endpoint), name);
		else
			st->base_url = psprintf("https://s3.%s.amazonaws.com/%s/", s3_region, name);
		st->uri_base = psprintf("s3://%s/", name);
	}
	else if (strncmp(url, "azure://", 8) == 0)
	{
		const char *p = url + 8;
		const char *s1 = strchr(p, '/');
		const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
		char	   *container;

		if (s1 == NULL || s1 == p)
			bad_url("expected azure://account/container/prefix");
		st->account = pnstrdup(p, s1 - p);
		container = s2 ? pnstrdup(s1 + 1, s2 - s1 - 1) : pstrdup(s1 + 1);
		if (container[0] == '\0' || !plain_path(st->account) || !plain_path(container) ||
			strchr(container, '/'))
			bad_url("the account or container name is missing or not plain");
		st->kind = STORE_AZURE;
		st->prefix = normalize_prefix(s2 ? s2 : "");
		if (azure_endpoint && azure_endpoint[0])
			st->base_url = psprintf("%s/%s/", trim_slash(azure_endpoint), container);
		else
			st->base_url = psprintf("https://%s.blob.core.windows.net/%s/", st->account, container);
		st->uri_base = psprintf("azure://%s/%s/", st->account, container);
	}
	else if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0)
	{
		st->kind = STORE_HTTP;
		st->base_url = psprintf("%s/", trim_slash(url));
		st->uri_base = st->base_url;
	}
	else
		bad_url("unknown scheme");
	return st;
}

/*
 * The store that holds a checkpoint recorded with `uri`, and its key there,
 * whatever jobq.checkpoint_url says now: recorded checkpoints stay readable
 * (and deletable) after the setting changes.  Credentials are the current
 * ones.  The URI must end like every key jobq writes, with no "..".
 */
JobqStore *
jobq_store_for_uri(const char *uri, const char **key)
{
	JobqStore  *st = palloc0(sizeof(JobqStore));
	const char *rest;
	size_t		len = strlen(uri);

	if (strstr(uri, "..") != NULL || len < 20 || strcmp(uri + len - 7, ".output") != 0 ||
		strstr(uri, "/units/unit_") == NULL)
		ereport(ERROR,
				(errcode(JOBQ_ERRCODE_STORE),
				 errmsg("checkpoint URI \"%s\" is not one jobq wrote", uri)));
	st->prefix = "";
	if (strncmp(uri, "file:///", 8) == 0)
	{
		st->kind = STORE_FILE;
		st->dir = "";
		*key = uri + 8;
	}
	else if (strncmp(uri, "s3://", 5) == 0 && (rest = strchr(uri + 5, '/')) != NULL)
	{
		char	   *bucket = pnstrdup(uri + 5, rest - uri - 5);

		st->kind = STORE_S3;
		if (s3_endpoint && s3_endpoint[0])
			st->base_url = psprintf("%s/%s/", trim_slash(s3_endpoint), bucket);
		else
			st->base_url = psprintf("https://s3.%s.amazonaws.com/%s/", s3_region, bucket);
		*key = rest + 1;
	}
	else if (strncmp(uri, "azure://", 8) == 0 && (rest = strchr(uri + 8, '/')) != NULL &&
			 strchr(rest + 1, '/') != NULL)
	{
		const char *slash = strchr(rest + 1, '/');
		char	   *container = pnstrdup(rest + 1, slash - rest - 1);

		st->kind = STORE_AZURE;
		st->account = pnstrdup(uri + 8, rest - uri - 8);
		if (azure_endpoint && azure_endpoint[0])
			st->base_url = psprintf("%s/%s/", trim_slash(azure_endpoint), container);
		else
			st->base_url = psprintf("https://%s.blob.core.windows.net/%s/", st->account, container);
		*key = slash + 1;
	}
	else if (strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0)
	{
		const char *base = checkpoint_url ? checkpoint_url : "";

		st->kind = STORE_HTTP;
		st->base_url = "";
		*key = uri;
		/* the store's headers (credentials) go only to the configured store */
		st->no_headers = base[0] == '\0' || strncmp(uri, base, strlen(base)) != 0;
	}
	else
		ereport(ERROR,
				(errcode(JOBQ_ERRCODE_STORE),
				 errmsg("checkpoint URI \"%s\" names no store jobq knows", uri)));
	st->uri_base = "";
	return st;
}

char *
jobq_store_key(const pg_uuid_t *user_id, const pg_uuid_t *job_id, int unit)
{
	char		user[UUID_LEN * 2 + 5];
	char		job[UUID_LEN * 2 + 5];

	jobq_uuid_to_cstring(user_id, user);
	jobq_uuid_to_cstring(job_id, job);
	return psprintf("%s/jobs/%s/units/unit_%d.output", user, job, unit);
}

char *
jobq_store_uri(JobqStore *st, const char *key)
{
	return psprintf("%s%s%s", st->uri_base, st->prefix, key);
}

/* ---- file store ---- */

static char *
file_path(JobqStore *st, const char *key)
{
	return psprintf("%s/%s%s", st->dir, st->prefix, key);
}

static void pg_attribute_noreturn()
file_error(const char *what, const char *path)
{
	int			save = errno;

	jobq_count_now(JOBQ_C_CHECKPOINT_FAILURES, 1);
	errno = save;
	ereport(ERROR,
			(errcode(JOBQ_ERRCODE_STORE),
			 errmsg("checkpoint store: could not %s \"%s\": %m", what, path)));
}

/* mkdir -p for the directories of path, fsyncing each new one's parent */
static void
make_parents(const char *path)
{
	char	   *p = pstrdup(path);

	for (char *s = p + 1; *s; s++)
	{
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, pg_dir_create_mode) == 0)
		{
			char	   *parent = pstrdup(p);
			char	   *slash = strrchr(parent, '/');

			if (slash && slash != parent)
			{
				*slash = '\0';
				/* ERROR, not fsync_fname()'s PANIC: this is a store, not the data directory */
				if (fsync_fname_ext(parent, true, false, ERROR) != 0)
					file_error("fsync directory", parent);
			}
		}
		else if (errno != EEXIST)
			file_error("create directory", p);
		*s = '/';
	}
}

static void
file_put(JobqStore *st, const char *key, const char *data, size_t len)
{
	char	   *path = file_path(st, key);
	char	   *tmp = psprintf("%s.tmp.%d", path, MyProcPid);
	int			fd;
	size_t		done = 0;

	make_parents(path);
	fd = OpenTransientFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		file_error("create", tmp);
	while (done < len)
	{
		ssize_t		n = write(fd, data + done, len - done);

		if (n < 0)
		{
			int			save = errno;

			CloseTransientFile(fd);
			unlink(tmp);
			errno = save ? save : ENOSPC;
			file_error("write", tmp);
		}
		done += n;
		CHECK_FOR_INTERRUPTS();
	}
	if (pg_fsync(fd) != 0)
	{
		CloseTransientFile(fd);
		file_error("fsync", tmp);
	}
	if (CloseTransientFile(fd) != 0)
		file_error("close", tmp);
	/* rename and fsync the directory: the checkpoint appears whole or not at all */
	if (durable_rename(tmp, path, LOG) != 0)
	{
		unlink(tmp);
		file_error("rename into place", path);
	}
}

static bool
file_get(JobqStore *st, const char *key, StringInfo out)
{
	char	   *path = file_path(st, key);
	int			fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	char		buf[65536];
	ssize_t		n;

	if (fd < 0)
	{
		if (errno == ENOENT)
			return false;
		file_error("open", path);
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
	{
		appendBinaryStringInfo(out, buf, (int) n);
		CHECK_FOR_INTERRUPTS();
	}
	if (n < 0)
	{
		CloseTransientFile(fd);
		file_error("read", path);
	}
	CloseTransientFile(fd);
	return true;
}

static int64
file_size(JobqStore *st, const char *key)
{
	char	   *path = file_path(st, key);
	struct stat sb;

	if (stat(path, &sb) != 0)
	{
		if (errno == ENOENT)
			return -1;
		file_error("stat", path);
	}
	return (int64) sb.st_size;
}

static void
file_delete(JobqStore *st, const char *key)
{
	char	   *path = file_path(st, key);
	char	   *slash;

	if (unlink(path) != 0 && errno != ENOENT)
		file_error("remove", path);
	/* drop the units/ and job directories once empty; failures are fine */
	for (int i = 0; i < 2 && (slash = strrchr(path, '/')) != NULL; i++)
	{
		*slash = '\0';
		if (rmdir(path) != 0)
			break;
	}
}

/* ---- remote stores ---- */

/* RFC 1123 date for x-ms-date */
static char *
http_date(void)
{
	char		buf[64];
	time_t		now = time(NULL);
	struct tm	tm;

	gmtime_r(&now, &tm);
	strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	return pstrdup(buf);
}

/* Azure SharedKey "Authorization" header for one request */
static char *
azure_authorization(JobqStore *st, const char *method, const char *url, size_t len,
					const char *content_type, List *ms_headers)
{
	StringInfoData sts;
	const char *path = strstr(url, "://");
	char	   *key;
	int			keylen;
	uint8		mac[PG_SHA256_DIGEST_LENGTH];
	char	   *sig;
	int			siglen;
	pg_hmac_ctx *ctx;
	ResourceOwner save;
	bool		ok;
	ListCell   *lc;

	path = strchr(path + 3, '/');
	initStringInfo(&sts);
	appendStringInfo(&sts, "%s\n\n\n", method);
	if (len > 0)
		appendStringInfo(&sts, "%zu", len);
	appendStringInfo(&sts, "\n\n%s\n\n\n\n\n\n\n", content_type ? content_type : "");
	foreach(lc, ms_headers)		/* already lowercase and sorted */
	{
		const char *h = lfirst(lc);
		const char *colon = strchr(h, ':');

		appendStringInfo(&sts, "%.*s:%s\n", (int) (colon - h), h, colon + 2);
	}
	appendStringInfo(&sts, "/%s%s", st->account, path);

	keylen = pg_b64_dec_len(strlen(azure_account_key));
	key = palloc(keylen + 1);
	keylen = pg_b64_decode(azure_account_key, strlen(azure_account_key), key, keylen);
	if (keylen < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jobq.azure_account_key is not valid base64")));
	save = lend_owner();
	ctx = pg_hmac_create(PG_SHA256);
	ok = ctx != NULL && pg_hmac_init(ctx, (uint8 *) key, keylen) == 0 &&
		pg_hmac_update(ctx, (uint8 *) sts.data, sts.len) == 0 &&
		pg_hmac_final(ctx, mac, sizeof(mac)) == 0;
	pg_hmac_free(ctx);
	CurrentResourceOwner = save;
	if (!ok)
		elog(ERROR, "jobq: could not compute the Azure signature");
	siglen = pg_b64_enc_len(sizeof(mac));
	sig = palloc(siglen + 1);
	siglen = pg_b64_encode((char *) mac, sizeof(mac), sig, siglen);
	sig[siglen] = '\0';
	return psprintf("Authorization: SharedKey %s:%s", st->account, sig);
}

/* Add the configured http store headers (a JSON object) to the request. */
static List *
configured_headers(List *headers)
{
	Jsonb	   *jb;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *name = NULL;

	if (http_store_headers == NULL || http_store_headers[0] == '\0')
		return headers;
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(http_store_headers)));
	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jobq.http_store_headers must be a JSON object of header names to values")));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			name = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && v.type == jbvString && name)
			headers = lappend(headers, psprintf("%s: %.*s", name, v.val.string.len,
												v.val.string.val));
	}
	return headers;
}

/*
 * One store request with retries.  Returns the final response; 404 is an
 * answer (not retried, not raised); other failures raise JOBQ_ERRCODE_STORE.
 */
static void
remote(JobqStore *st, const char *method, const char *key, const char *data, size_t len,
	   JobqHttpResponse *resp)
{
	char	   *url = psprintf("%s%s%s", st->base_url, st->prefix, key);
	int			attempt;

	if (st->kind == STORE_AZURE && azure_sas_token && azure_sas_token[0])
		url = psprintf("%s?%s", url, azure_sas_token[0] == '?' ? azure_sas_token + 1 : azure_sas_token);

	for (attempt = 0;; attempt++)
	{
		JobqHttpRequest req = {0};
		List	   *headers = list_make1("Expect:");

		req.method = method;
		req.url = url;
		req.body = data;
		req.body_len = len;
		req.timeout_ms = store_timeout_ms;
		req.max_response = (size_t) jobq_max_checkpoint_bytes + 65536;

		if (st->kind == STORE_S3)
		{
			char		hash[65];

			jobq_sha256_hex(data ? data : "", len, hash);
			headers = lappend(headers, psprintf("x-amz-content-sha256: %s", hash));
			if (s3_access_key_id && s3_access_key_id[0])
			{
				req.aws_sigv4 = psprintf("aws:amz:%s:s3", s3_region);
				req.userpwd = psprintf("%s:%s", s3_access_key_id, s3_secret_access_key);
			}
		}
		else if (st->kind == STORE_AZURE)
		{
			List	   *ms = NIL;
			const char *ctype = strcmp(method, "PUT") == 0 ? "application/octet-stream" : NULL;

			if (ctype)
			{
				headers = lappend(headers, psprintf("Content-Type: %s", ctype));
				ms = lappend(ms, "x-ms-blob-type: BlockBlob");
			}
			ms = lappend(ms, psprintf("x-ms-date: %s", http_date()));
			ms = lappend(ms, "x-ms-version: 2021-08-06");
			headers = list_concat(headers, ms);
			if (!(azure_sas_token && azure_sas_token[0]))
			{
				if (!(azure_account_key && azure_account_key[0]))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("an azure:// checkpoint store needs jobq.azure_account_key or jobq.azure_sas_token")));
				headers = lappend(headers, azure_authorization(st, method, url, len, ctype, ms));
			}
		}
		else if (!st->no_headers)
			headers = configured_headers(headers);
		req.headers = headers;

		jobq_http_perform(&req, resp);
		if ((resp->status >= 200 && resp->status < 300) || resp->status == 404)
			return;
		if (!jobq_http_retryable(resp) || attempt >= store_retries)
			break;
		jobq_sleep_interruptible(100L << Min(attempt, 6));
	}
	/* the URL names only the store and key: no credentials in it or here */
	jobq_count_now(JOBQ_C_CHECKPOINT_FAILURES, 1);
	if (resp->status == 0)
		ereport(ERROR,
				(errcode(JOBQ_ERRCODE_STORE),
				 errmsg("checkpoint store %s of %s failed after %d attempts: %s",
						method, jobq_store_uri(st, key), attempt + 1, resp->error)));
	ereport(ERROR,
			(errcode(JOBQ_ERRCODE_STORE),
			 errmsg("checkpoint store %s of %s failed after %d attempts: HTTP %ld",
					method, jobq_store_uri(st, key), attempt + 1, resp->status)));
}

/* ---- the interface ---- */

void
jobq_store_put(JobqStore *st, const char *key, const char *data, size_t len)
{
	JobqHttpResponse resp;

	if (st->kind == STORE_FILE)
		file_put(st, key, data, len);
	else
	{
		remote(st, "PUT", key, data, len, &resp);
		if (resp.status == 404)
		{
			jobq_count_now(JOBQ_C_CHECKPOINT_FAILURES, 1);
			ereport(ERROR,
					(errcode(JOBQ_ERRCODE_STORE),
					 errmsg("checkpoint store PUT of %s failed: HTTP 404 (does the bucket or container exist?)",
							jobq_store_uri(st, key))));
		}
	}
	jobq_count_now(JOBQ_C_CHECKPOINTS, 1);
	jobq_count_now(JOBQ_C_CHECKPOINT_BYTES, (int64) len);
}

bool
jobq_store_get(JobqStore *st, const char *key, StringInfo out)
{
	JobqHttpResponse resp;

	if (st->kind == STORE_FILE)
		return file_get(st, key, out);
	remote(st, "GET", key, NULL, 0, &resp);
	if (resp.status == 404)
		return false;
	appendBinaryStringInfo(out, resp.body.data, resp.body.len);
	return true;
}

int64
jobq_store_size(JobqStore *st, const char *key)
{
	JobqHttpResponse resp;

	if (st->kind == STORE_FILE)
		return file_size(st, key);
	remote(st, "HEAD", key, NULL, 0, &resp);
	if (resp.status == 404)
		return -1;
	return resp.content_length;
}

void
jobq_store_delete(JobqStore *st, const char *key)
{
	JobqHttpResponse resp;

	if (st->kind == STORE_FILE)
		file_delete(st, key);
	else
		remote(st, "DELETE", key, NULL, 0, &resp);
}
