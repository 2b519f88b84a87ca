/* Test server: server PATH WIDTH HEIGHT FRAMES FLAGS
 * FLAGS: "-" or letters: f = IMAGESTREAM_OPTIONS_FLIPVERTICAL.
 * Prints "ready" once the stream exists, then sends frames 1..FRAMES, each
 * retried while the answer is UNCONNECTED or NO_BUFFERAVAILABLE, so every
 * frame is published once. */
#include "common.h"

#include <string.h>

#include <shared_memory_image_client.h>

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: server PATH WIDTH HEIGHT FRAMES FLAGS\n");
        return 2;
    }
    uint32_t w = (uint32_t)arg_ul(argv[2]), h = (uint32_t)arg_ul(argv[3]);
    uint32_t frames = (uint32_t)arg_ul(argv[4]);
    uint32_t options = IMAGESTREAM_OPTIONS_SERVER;
    if (strchr(argv[5], 'f'))
        options |= IMAGESTREAM_OPTIONS_FLIPVERTICAL;

    SharedMemoryImageStream s = NULL;
    int rc = SharedMemoryImageStream_create(argv[1], options, &s);
    if (rc != IMAGESTREAM_NOERROR) {
        fprintf(stderr, "server: create: %d %s\n", rc, SharedMemoryImageStream_errorstring(rc));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);

    size_t len = (size_t)w * h * 3;
    uint8_t *pixels = malloc(len);
    if (!pixels) {
        fprintf(stderr, "server: out of memory\n");
        return 1;
    }
    unsigned long unconnected = 0, nobuffer = 0;
    int status = 0;
    double deadline = now_s() + 60.0;
    for (uint32_t f = 1; f <= frames && status == 0; f++) {
        uint8_t *p = pixels;
        for (uint32_t r = 0; r < h; r++)
            for (uint32_t c = 0; c < w; c++)
                for (uint32_t k = 0; k < 3; k++)
                    *p++ = pattern(f, r, c, k);
        struct _SharedMemoryFrame frame = { f, w, h, pixels };
        for (;;) {
            rc = SharedMemoryImageStream_putframe(s, &frame);
            if (rc == IMAGESTREAM_NOERROR)
                break;
            if (rc == IMAGESTREAM_UNCONNECTED)
                unconnected++;
            else if (rc == IMAGESTREAM_NO_BUFFERAVAILABLE)
                nobuffer++;
            else {
                fprintf(stderr, "server: putframe %u: %d %s\n", f, rc, SharedMemoryImageStream_errorstring(rc));
                status = 1;
                break;
            }
            if (now_s() > deadline) {
                fprintf(stderr, "server: frame %u not taken in time (last answer %d)\n", f, rc);
                status = 1;
                break;
            }
            sleep_us(200);
        }
    }
    printf("sent %u unconnected %lu nobuffer %lu\n", status ? 0 : frames, unconnected, nobuffer);
    free(pixels);
    rc = SharedMemoryImageStream_destroy(s);
    if (rc != IMAGESTREAM_NOERROR) {
        fprintf(stderr, "server: destroy: %d\n", rc);
        status = 1;
    }
    return status;
}
