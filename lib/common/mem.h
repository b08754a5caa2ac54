/* Allocation wrappers: every allocation in ferry goes through these, so that
 * ferry_set_allocator() and malloc-failure tests see all of them. */
#ifndef FERRY_COMMON_MEM_H
#define FERRY_COMMON_MEM_H

#include <stddef.h>

void *ferry_mem_alloc(size_t size);
void *ferry_mem_calloc(size_t count, size_t size);
void *ferry_mem_realloc(void *ptr, size_t size);
void ferry_mem_free(void *ptr);
/* Copy len bytes and add a NUL; NULL when out of memory. */
char *ferry_mem_strndup(const char *s, size_t len);
char *ferry_mem_strdup(const char *s);

#endif
