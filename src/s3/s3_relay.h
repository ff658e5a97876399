/*
 * s3_relay.h: one S3 request relayed, unchanged, to another worker's
 * gateway, and its answer back to the client (s3_relay.c).
 */
#ifndef FERRY_S3_RELAY_H
#define FERRY_S3_RELAY_H

#include <stddef.h>

#include "../http/http_parse.h"
#include "../http/http_server.h"

/* The header a relayed request carries: a worker never relays one again
 * (a stale view cannot bounce a request between workers).  Not x-amz-*:
 * no signature covers it. */
#define RELAY_MARK "X-Ferry-Relayed"

/* Can the request-target go through a relay byte for byte?  (libcurl
 * would percent-encode raw bytes over 0x7e and cut at '#'.) */
int s3_relay_target_ok(const struct http_request *req);

/*
 * Sends req (its body read from c as it comes) to the gateway at addr
 * ("host:port") and streams the answer to c.  0 once the answer has begun
 * to reach the client (*status is its status; a transfer cut short after
 * that closes the connection, which the client sees); -errno when nothing
 * was sent, with why the peer's failure in words: the caller answers.
 */
int s3_relay(struct http_conn *c, const struct http_request *req,
    const char *addr, int *status, char *why, size_t whylen);

#endif
