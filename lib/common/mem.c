#include "common/mem.h"

#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "ferry.h"

typedef struct {
    void *(*malloc_fn)(size_t);
    void *(*realloc_fn)(void *, size_t);
    void *(*calloc_fn)(size_t, size_t);
    void (*free_fn)(void *);
} allocator;

static allocator alloc_fns = {malloc, realloc, calloc, free};
/* Set once anything was allocated: replacing the allocator then would free memory with the
 * wrong function (libuv's uv_replace_allocator has the same rule). */
static int allocated;
static int hooks_installed;

/* cJSON allocates through its own hooks; point them at ours once. */
static void install_cjson_hooks(void)
{
    cJSON_Hooks hooks = {alloc_fns.malloc_fn, alloc_fns.free_fn};
    cJSON_InitHooks(&hooks);
    hooks_installed = 1;
}

int ferry_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                        void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *))
{
    if (malloc_fn == NULL || realloc_fn == NULL || calloc_fn == NULL || free_fn == NULL)
        return -FERRY_EINVAL;
    if (allocated)
        return -FERRY_EBUSY;
    alloc_fns.malloc_fn = malloc_fn;
    alloc_fns.realloc_fn = realloc_fn;
    alloc_fns.calloc_fn = calloc_fn;
    alloc_fns.free_fn = free_fn;
    install_cjson_hooks();
    return 0;
}

static void note_use(void)
{
    allocated = 1;
    if (!hooks_installed)
        install_cjson_hooks();
}

void *ferry_mem_alloc(size_t size)
{
    note_use();
    return alloc_fns.malloc_fn(size ? size : 1);
}

void *ferry_mem_calloc(size_t count, size_t size)
{
    note_use();
    return alloc_fns.calloc_fn(count ? count : 1, size ? size : 1);
}

void *ferry_mem_realloc(void *ptr, size_t size)
{
    note_use();
    return alloc_fns.realloc_fn(ptr, size ? size : 1);
}

void ferry_mem_free(void *ptr)
{
    if (ptr != NULL)
        alloc_fns.free_fn(ptr);
}

char *ferry_mem_strndup(const char *s, size_t len)
{
    char *p = ferry_mem_alloc(len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *ferry_mem_strdup(const char *s)
{
    return ferry_mem_strndup(s, strlen(s));
}
