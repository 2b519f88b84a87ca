/* Test client: client PATH WIDTH HEIGHT LAST FLAGS
 * FLAGS: "-" or letters: f = the server flips, so rows arrive bottom-up;
 * t = IMAGESTREAM_OPTIONS_NOTHREADS.
 * Locks frames until it has seen frame LAST, checking every pixel and that
 * frame numbers only grow; prints "received N last L". */
#include "common.h"

#include <string.h>

#include <shared_memory_image_client.h>

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: client PATH WIDTH HEIGHT LAST FLAGS\n");
        return 2;
    }
    uint32_t w = (uint32_t)arg_ul(argv[2]), h = (uint32_t)arg_ul(argv[3]);
    uint32_t last = (uint32_t)arg_ul(argv[4]);
    int flip = strchr(argv[5], 'f') != NULL;
    uint32_t options = strchr(argv[5], 't') ? IMAGESTREAM_OPTIONS_NOTHREADS : IMAGESTREAM_OPTIONS_NONE;

    SharedMemoryImageStream s = NULL;
    int rc = SharedMemoryImageStream_create(argv[1], options, &s);
    if (rc != IMAGESTREAM_NOERROR) {
        fprintf(stderr, "client: create: %d %s\n", rc, SharedMemoryImageStream_errorstring(rc));
        return 1;
    }
    uint32_t prev = 0, received = 0;
    int status = 0;
    double deadline = now_s() + 60.0;
    while (prev != last && status == 0) {
        SharedMemoryFrame f = NULL;
        rc = SharedMemoryImageStream_lock(s, &f);
        if (rc == IMAGESTREAM_NO_FRAMEAVAILABLE) {
            if (now_s() > deadline) {
                fprintf(stderr, "client: no frame %u in time (last seen %u)\n", last, prev);
                status = 1;
            }
            sleep_us(100);
            continue;
        }
        if (rc != IMAGESTREAM_NOERROR) {
            fprintf(stderr, "client: lock: %d %s\n", rc, SharedMemoryImageStream_errorstring(rc));
            status = 1;
            break;
        }
        if (f == NULL || f->buffer == NULL || f->iWidth != w || f->iHeight != h || f->iFrame <= prev
            || f->iFrame > last) {
            fprintf(stderr, "client: bad frame after %u: %u %ux%u\n", prev, f ? f->iFrame : 0,
                    f ? f->iWidth : 0, f ? f->iHeight : 0);
            status = 1;
        } else {
            const uint8_t *p = f->buffer;
            for (uint32_t r = 0; r < h && status == 0; r++) {
                uint32_t src = flip ? h - 1 - r : r;
                for (uint32_t c = 0; c < w; c++)
                    for (uint32_t k = 0; k < 3; k++, p++)
                        if (*p != pattern(f->iFrame, src, c, k)) {
                            fprintf(stderr, "client: frame %u pixel (%u,%u,%u) = %u, want %u\n", f->iFrame,
                                    r, c, k, *p, pattern(f->iFrame, src, c, k));
                            status = 1;
                            c = w;
                            break;
                        }
            }
            prev = f->iFrame;
            received++;
        }
        rc = SharedMemoryImageStream_unlock(s);
        if (rc != IMAGESTREAM_NOERROR) {
            fprintf(stderr, "client: unlock: %d\n", rc);
            status = 1;
        }
    }
    printf("received %u last %u\n", received, prev);
    rc = SharedMemoryImageStream_destroy(s);
    if (rc != IMAGESTREAM_NOERROR) {
        fprintf(stderr, "client: destroy: %d\n", rc);
        status = 1;
    }
    return status;
}
