/* Shared by the test programs: the pixel pattern both ends agree on, and a
 * monotonic clock for deadlines. */
#ifndef SHMIMAGE_CAPI_TEST_COMMON_H
#define SHMIMAGE_CAPI_TEST_COMMON_H

#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Depends on every coordinate, so a swapped row, a shifted band or a stale
 * frame all show up as a mismatch. */
static inline uint8_t pattern(uint32_t frame, uint32_t row, uint32_t col, uint32_t ch)
{
    return (uint8_t)(frame * 31u + row * 7u + col * 3u + ch * 101u + (row >> 8) * 13u);
}

static inline double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline void sleep_us(long us)
{
    struct timespec t = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&t, NULL);
}

static inline unsigned long arg_ul(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0') {
        fprintf(stderr, "not a number: %s\n", s);
        exit(2);
    }
    return v;
}

#endif
