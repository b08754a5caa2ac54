/* FERRY_ASSERT: broken internal invariants stop the program, in release builds too (Redis
 * serverAssert). Never used for input or out-of-memory, which are errors, not bugs. */
#ifndef FERRY_COMMON_ASSERT_H
#define FERRY_COMMON_ASSERT_H

void ferry_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#define FERRY_ASSERT(e) ((e) ? (void)0 : ferry_assert_fail(#e, __FILE__, __LINE__))

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
