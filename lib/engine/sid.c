/* Signed session ids of a cluster node (issue 18, docs/scaling.md "Forwarding").
 *
 * On a node of a cluster, a sid names the node that owns the session, and says so in a way
 * only the cluster's members can write:
 *
 *   base64url( random[12] | tag[6] | mac[9] )       27 bytes, 36 characters
 *
 * tag is the owning node's tag (random per process, published in Redis with its address),
 * mac the first 9 bytes of HMAC-SHA256(key, random | tag) with the cluster's key. A node that
 * gets a request for a sid it does not hold checks the mac before it forwards anything: a
 * forged or altered sid is answered "Session ID unknown" at once, without a hop. The random
 * part keeps a sid unguessable as before (96 bits); clients treat the sid as opaque.
 * A server that is no cluster node keeps minting the plain 22-character sids. */
#include "engine/internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

#include "common/base64.h"

#define RAND_LEN 12
#define MAC_LEN 9
#define RAW_LEN (RAND_LEN + FERRY_SID_TAG_LEN + MAC_LEN)

_Static_assert((RAW_LEN / 3) * 4 == FERRY_SID_MAX, "a signed sid is FERRY_SID_MAX characters");

static void mac_of(const ferry_engine *eng, const uint8_t *msg, uint8_t out[MAC_LEN])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    HMAC(EVP_sha256(), eng->cluster.key, (int)sizeof(eng->cluster.key), msg,
         RAND_LEN + FERRY_SID_TAG_LEN, md, &mdlen);
    memcpy(out, md, MAC_LEN);
}

int ferry_engine_set_cluster(ferry_engine *eng, const uint8_t key[32],
                             const uint8_t tag[FERRY_SID_TAG_LEN], ferry_engine_forward_fn fn,
                             void *ud)
{
    if (eng == NULL || key == NULL || tag == NULL)
        return -FERRY_EINVAL;
    memcpy(eng->cluster.key, key, sizeof(eng->cluster.key));
    memcpy(eng->cluster.tag, tag, FERRY_SID_TAG_LEN);
    eng->cluster.forward = fn;
    eng->cluster.forward_ud = ud;
    eng->cluster.on = 1;
    return 0;
}

void ferry_engine_clear_forward(ferry_engine *eng)
{
    eng->cluster.forward = NULL;
    eng->cluster.forward_ud = NULL;
}

int ferry_sid_mint(const ferry_engine *eng, char *out)
{
    uint8_t raw[RAW_LEN];
    if (RAND_bytes(raw, RAND_LEN) != 1)
        return -1;
    memcpy(raw + RAND_LEN, eng->cluster.tag, FERRY_SID_TAG_LEN);
    mac_of(eng, raw, raw + RAND_LEN + FERRY_SID_TAG_LEN);
    size_t n = ferry_base64url_encode(out, raw, sizeof(raw));
    out[n] = '\0';
    return 0;
}

int ferry_engine_sid_tag(const ferry_engine *eng, const char *sid, uint8_t tag[FERRY_SID_TAG_LEN])
{
    if (!eng->cluster.on || sid == NULL || strlen(sid) != FERRY_SID_MAX)
        return 0;
    uint8_t raw[RAW_LEN];
    if (ferry_base64url_decode(raw, sid, FERRY_SID_MAX) != RAW_LEN)
        return 0;
    uint8_t mac[MAC_LEN];
    mac_of(eng, raw, mac);
    if (CRYPTO_memcmp(mac, raw + RAND_LEN + FERRY_SID_TAG_LEN, MAC_LEN) != 0)
        return 0;
    memcpy(tag, raw + RAND_LEN, FERRY_SID_TAG_LEN);
    return 1;
}
