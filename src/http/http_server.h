/*
 * http_server.h: the HTTP/1.1 server used by the S3 gateway and the control
 * API.  One waiter thread per server accepts and watches connections
 * between requests with epoll (an idle keep-alive connection holds no
 * thread); a connection in a request has a thread of its own (small
 * stacks, reused).  Caps on connections, per server and per client
 * address: at a cap the oldest idle connection is closed to make room, and
 * a new client gets 503 only when every connection is in a request.
 * Keep-alive, request-head limits from http_parse.h, a header timeout
 * against slow-loris clients, idle and I/O timeouts.
 *
 * A handler runs on the thread given its request and must send exactly one
 * response with the http_resp_* calls.  It may block (UFS reads): other
 * requests have their own threads.
 */
#ifndef FERRY_HTTP_SERVER_H
#define FERRY_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http_parse.h"

struct http_conn;
struct http_server;

typedef void (*http_handler_fn)(struct http_conn *c,
    const struct http_request *req, void *arg);

struct http_server_cfg {
	const char *host;         /* "127.0.0.1", "0.0.0.0", "::" */
	int port;                 /* 0 picks a free port (tests) */
	int max_conns;            /* default 4096 */
	int max_conns_per_client; /* per client address (IPv6: per /64);
	                             default 1024 */
	int header_timeout_ms;    /* whole head must arrive within; default 20000 */
	int idle_timeout_ms;      /* keep-alive idle; default 60000 */
	int io_timeout_ms;        /* per send/recv; default 60000 */
	size_t max_body;          /* largest request body handlers may read; default 1 MiB */
	const char *name;         /* for logs: "s3", "control" */
};

/* Also raises the process's soft RLIMIT_NOFILE to the hard limit (once):
 * every connection is a descriptor. */
struct http_server *http_server_start(const struct http_server_cfg *cfg,
    http_handler_fn fn, void *arg, char **err);
int http_server_port(const struct http_server *s); /* the bound port */
struct http_server_stats {
	int64_t open_conns;
	int64_t idle_conns;     /* of those, parked between requests */
	int64_t threads;        /* connection threads, busy or pooled */
	int64_t rejected_total; /* refused (503): at a cap, none idle */
	int64_t shed_total;     /* idle connections closed to make room */
};
void http_server_get_stats(struct http_server *s, struct http_server_stats *st);

/* Stops accepting, closes idle connections, waits for running handlers
 * (shutting their sockets down after a grace period). */
void http_server_stop(struct http_server **s);

/* --- used by handlers, on the thread running the request --------------- */

/*
 * Sends the status line and headers.  extra_headers is zero or more
 * preformatted "Name: value\r\n" lines (may be NULL).  content_length < 0
 * means the body length is unknown: chunked encoding is used.  Adds Date,
 * Server, Content-Length or Transfer-Encoding and Connection itself.
 * For HEAD requests pass the length of the body GET would send; no body is
 * sent (later body calls are no-ops).  Returns 0 or -errno.
 */
int http_resp_start(struct http_conn *c, int status, const char *extra_headers,
    int64_t content_length);
/* Body bytes (framed as a chunk when chunked).  0 or -errno. */
int http_resp_body(struct http_conn *c, const void *p, size_t n);
/* Body bytes from a file with sendfile(2), no user-space copy. 0 or -errno. */
int http_resp_sendfile(struct http_conn *c, int fd, off_t off, size_t n);
/* Ends the response (last chunk if chunked).  0 or -errno. */
int http_resp_end(struct http_conn *c);
/* Whole response with a small in-memory body. */
int http_resp_simple(struct http_conn *c, int status, const char *extra_headers,
    const char *content_type, const void *body, size_t n);
/* True once the status line was sent (a handler can no longer change it). */
int http_resp_started(const struct http_conn *c);
/* Closes the connection after this response (e.g. after a mid-body error). */
void http_conn_set_close(struct http_conn *c);

/*
 * Reads the whole request body (Content-Length or chunked, decoded) into
 * buf, at most cap bytes.  Returns bytes read, or -E2BIG if the body is
 * larger than cap or the server's max_body, or -errno.  For small bodies
 * (the control API); uploads stream with http_body_read.
 */
ssize_t http_read_body(struct http_conn *c, void *buf, size_t cap);

/*
 * Streams the request body: the next bytes of it (Content-Length or
 * chunked, HTTP's framing removed; chunk extensions and trailer fields are
 * dropped) into buf, at most cap, as soon as some are there.  Call it
 * again for more.  Returns the number of bytes (> 0), 0 at the end of the
 * body (and on every later call; at once for a request without a body),
 * or -errno:
 *   -ECONNRESET (or -EPIPE) the client closed or reset the connection
 *               before the body's end;
 *   -ETIMEDOUT  no byte came for the server's io_timeout_ms;
 *   -EPROTO     malformed chunked framing;
 *   -EINVAL     cap is 0.
 * After an error every call returns it and the connection is closed after
 * the response.  The first call answers "Expect: 100-continue", also for
 * an empty body (a handler that refuses a request answers before reading,
 * and the client need not send the body; a final answer to such a request
 * without a 100 before it closes the connection).  Nothing is buffered beyond the server's own small stage
 * and buf, and the server's max_body does not apply: the handler bounds
 * what it accepts.  http_read_body and this share one reader; mixing them
 * on one request continues where the other stopped.
 *
 * A handler may answer without reading the whole body: the server then
 * drains what is left of a Content-Length body of at most 1 MiB to keep
 * the connection, and closes it otherwise (a chunked body, a larger
 * rest, a client told no 100 Continue, a failed read); the response says
 * "Connection: close" whenever that is decided at its start.
 */
ssize_t http_body_read(struct http_conn *c, void *buf, size_t cap);
/* 1 while body bytes are left unread (0: none, all read, or failed). */
int http_body_pending(const struct http_conn *c);

const char *http_conn_peer(const struct http_conn *c); /* "ip:port" */
int http_conn_is_loopback(const struct http_conn *c);

#endif
