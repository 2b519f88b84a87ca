/* A native stream reader in C (lossless): waits for the stream, reads until
 * the END frame, checks every pixel, the metadata and the order. Prints
 * "READ frames=N missed=M" and exits 0, or the failing check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "shmimage.h"

#define END_FLAG 0x10000u

static int fail(const char *what, int rc) {
    printf("FAIL %s: %d %s\n", what, rc, shmimage_errorstring(rc));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *path = argv[1];
    shmimage_reader r = 0;
    int rc;
    for (int i = 0; ; i++) {
        rc = shmimage_reader_open(path, 1, &r);
        if (rc == 0) break;
        if (i > 20000) return fail("open", rc);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    char flag[4096];
    snprintf(flag, sizeof flag, "%s.joined", path);
    FILE *jf = fopen(flag, "w");
    if (!jf) return fail("flag file", 0);
    fclose(jf);
    uint64_t last = 0, frames = 0;
    for (;;) {
        shmimage_frame f;
        rc = shmimage_reader_read(r, 20000, &f);
        if (rc) return fail("read", rc);
        if (strcmp(shmimage_format_name(f.format), "BGRX8") != 0 || f.width != 8 || f.height != 4) return fail("descriptor", (int)f.format);
        if (last && f.sequence != last + 1) return fail("order", (int)f.sequence);
        for (uint32_t y = 0; y < f.height; y++)
            for (uint32_t x = 0; x < f.planes[0].row_bytes; x++)
                if (f.pixels[f.planes[0].offset + (uint64_t)y * f.planes[0].stride + x] != (uint8_t)(f.sequence + y * 31 + x))
                    return fail("pixels", (int)f.sequence);
        char want[32];
        int n = snprintf(want, sizeof want, "seq=%llu", (unsigned long long)f.sequence);
        if (f.metadata_len != (uint64_t)n || memcmp(f.metadata, want, (size_t)n) != 0) return fail("metadata", (int)f.sequence);
        if (f.publish_mono_ns == 0 || f.publish_real_ns == 0 || f.epoch != 1) return fail("times/epoch", 0);
        last = f.sequence;
        frames++;
        int end = (f.flags & END_FLAG) != 0;
        rc = shmimage_frame_release(f.handle);
        if (rc) return fail("release", rc);
        if (shmimage_frame_release(f.handle) != SHMIMAGE_STALE_HANDLE) return fail("release twice", 0);
        if (end) break;
    }
    uint64_t missed = 99;
    rc = shmimage_reader_missed(r, &missed);
    if (rc) return fail("missed", rc);
    /* After the writer is gone and every frame was read: WRITER_GONE. */
    shmimage_frame f;
    rc = shmimage_reader_read(r, 20000, &f);
    if (rc != SHMIMAGE_WRITER_GONE) return fail("writer gone", rc);
    printf("READ frames=%llu missed=%llu first_after_join=1\n", (unsigned long long)frames, (unsigned long long)missed);
    shmimage_destroy(r);
    return 0;
}
