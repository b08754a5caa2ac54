/* Built without Redis (-DFERRY_WITH_REDIS=OFF): the cluster functions of ferry.h exist and say
 * so (redis.c is the real one). */
#include "adapter/adapter.h"

int ferry_redis_new(uv_loop_t *loop, const ferry_redis_config *cfg, ferry_redis **out)
{
    (void)loop;
    (void)cfg;
    (void)out;
    return -FERRY_EUNSUPPORTED;
}

const ferry_adapter_factory *ferry_redis_factory(ferry_redis *r)
{
    (void)r;
    return NULL;
}

/* No ferry_redis can exist: these are never reached with a real one. */
const char *ferry_redis_node_id(const ferry_redis *r)
{
    (void)r;
    return "";
}

void ferry_redis_stats_get(const ferry_redis *r, ferry_redis_stats *out)
{
    (void)r;
    *out = (ferry_redis_stats){0};
}

int ferry_redis_shard_stats_get(const ferry_redis *r, ferry_redis_shard_stats *out)
{
    (void)r;
    (void)out;
    return -FERRY_EINVAL;
}

void ferry_redis_close(ferry_redis *r, ferry_redis_close_cb cb, void *user_data)
{
    if (r != NULL && cb != NULL)
        cb(r, user_data);
}

int ferry_redis_command(ferry_redis *r, ferry_redis_reply_fn fn, void *ud, int argc,
                        const char **argv, const size_t *lens)
{
    (void)r;
    (void)fn;
    (void)ud;
    (void)argc;
    (void)argv;
    (void)lens;
    return -FERRY_EUNSUPPORTED;
}

const char *ferry_redis_prefix(const ferry_redis *r)
{
    (void)r;
    return "";
}

void ferry_redis_identity(const ferry_redis *r, char *out, size_t cap)
{
    (void)r;
    if (cap > 0)
        out[0] = '\0';
}
