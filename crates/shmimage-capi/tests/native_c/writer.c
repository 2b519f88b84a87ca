/* A native stream writer in C: creates the stream, publishes `count` BGRX
 * frames (loaned and put, alternately), each with metadata "seq=N", the last
 * one flagged END. Prints "WROTE n" and exits 0, or the failing call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "shmimage.h"

#define W 8
#define H 4
#define END_FLAG 0x10000u

static int fail(const char *what, int rc) {
    printf("FAIL %s: %d %s\n", what, rc, shmimage_errorstring(rc));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *path = argv[1];
    int count = atoi(argv[2]);
    shmimage_writer_options o = {4, 256, W * H * 4, -1};
    shmimage_writer w = 0;
    int rc = shmimage_writer_create(path, &o, &w);
    if (rc) return fail("create", rc);
    /* A second writer while this one lives is refused. */
    shmimage_writer w2 = 0;
    rc = shmimage_writer_open(path, NULL, &w2);
    if (rc != SHMIMAGE_PEER_BUSY) return fail("second writer not refused", rc);
    printf("READY\n");
    fflush(stdout);
    /* Wait for the reader to say it joined (it creates path.joined). */
    char flag[4096];
    snprintf(flag, sizeof flag, "%s.joined", argv[1]);
    for (int i = 0; i < 20000; i++) {
        FILE *f = fopen(flag, "r");
        if (f) { fclose(f); break; }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    uint8_t packed[W * H * 4];
    for (int n = 1; n <= count; n++) {
        char meta[32];
        int mlen = snprintf(meta, sizeof meta, "seq=%d", n);
        uint32_t flags = n == count ? END_FLAG : 0;
        uint64_t seq = 0;
        if (n % 2) {
            shmimage_frame f;
            rc = shmimage_writer_loan(w, SHMIMAGE_FORMAT_BGRX8, W, H, -1, &f);
            if (rc) return fail("loan", rc);
            if (f.planes[0].stride != 64 || f.len < (uint64_t)(H - 1) * 64 + W * 4) return fail("loan layout", -1);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W * 4; x++) f.pixels[f.planes[0].offset + (uint64_t)y * f.planes[0].stride + x] = (uint8_t)(n + y * 31 + x);
            rc = shmimage_loan_commit(f.handle, meta, (uint64_t)mlen, flags, &seq);
            if (rc) return fail("commit", rc);
            rc = shmimage_loan_abandon(f.handle);
            if (rc != SHMIMAGE_STALE_HANDLE) return fail("a committed loan is used up", rc);
        } else {
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W * 4; x++) packed[y * W * 4 + x] = (uint8_t)(n + y * 31 + x);
            rc = shmimage_writer_put(w, SHMIMAGE_FORMAT_BGRX8, W, H, 0, packed, sizeof packed, meta, (uint64_t)mlen, flags, &seq);
            if (rc) return fail("put", rc);
        }
        if (seq != (uint64_t)n) return fail("sequence", (int)seq);
    }
    printf("WROTE %d\n", count);
    rc = shmimage_destroy(w);
    if (rc) return fail("destroy", rc);
    if (shmimage_destroy(w) != SHMIMAGE_STALE_HANDLE) return fail("destroy twice", 0);
    return 0;
}
