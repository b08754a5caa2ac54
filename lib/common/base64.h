/* Base64 (RFC 4648 section 4) for binary packets on text transports, and base64url without
 * padding (section 5) for session ids. Plain functions over caller buffers: no allocation. */
#ifndef FERRY_COMMON_BASE64_H
#define FERRY_COMMON_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode n bytes with padding. */
#define FERRY_BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* Encode n bytes into out (FERRY_BASE64_LEN(n) bytes, no NUL); returns the length written. */
size_t ferry_base64_encode(char *out, const void *in, size_t n);
/* base64url without padding; returns the length written ((4n + 2) / 3 bytes). */
size_t ferry_base64url_encode(char *out, const void *in, size_t n);
/* Decode standard base64 (padding required when the length is not a multiple of 4 is not
 * demanded: unpadded input is accepted, as Node's Buffer does). out needs at most
 * 3 * ((n + 3) / 4) bytes. Returns the decoded length, or -1 for a character outside the
 * alphabet or a malformed tail. */
long ferry_base64_decode(uint8_t *out, const char *in, size_t n);
/* Decode base64url without padding (session ids); the same bounds and result. */
long ferry_base64url_decode(uint8_t *out, const char *in, size_t n);

#endif
