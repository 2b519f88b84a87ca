/* Read one frame from a stream and print its size and first pixel.
 *   cc client.c $(pkg-config --cflags --libs shared_memory_image_client) -o client
 *   ./client /dev/shm/stream.shm
 * Every failure says why, with the library's own text for the code. */
#include <stdio.h>
#include <unistd.h>
#include <shared_memory_image_client.h>

int main(int argc, char **argv) {
    SharedMemoryImageStream s;
    SharedMemoryFrame f;
    SharedMemoryImageError rc;
    if (argc != 2) {
        fprintf(stderr, "usage: %s STREAM_FILE\n", argv[0]);
        return 2;
    }
    rc = SharedMemoryImageStream_create(argv[1], IMAGESTREAM_OPTIONS_NONE, &s);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot open the stream: %s (code %d)\n", argv[1], SharedMemoryImageStream_errorstring(rc),
                (int)rc);
        return 1;
    }
    /* Positive codes (no frame yet, server not there yet) mean: try again. */
    while ((rc = SharedMemoryImageStream_lock(s, &f)) != IMAGESTREAM_NOERROR) {
        if (rc < 0) {
            fprintf(stderr, "%s: cannot lock a frame: %s (code %d)\n", argv[1], SharedMemoryImageStream_errorstring(rc),
                    (int)rc);
            SharedMemoryImageStream_destroy(s);
            return 1;
        }
        usleep(1000);
    }
    printf("frame %u: %ux%u, first pixel %u %u %u\n", f->iFrame, f->iWidth, f->iHeight,
           f->buffer[0], f->buffer[1], f->buffer[2]);
    SharedMemoryImageStream_unlock(s);
    rc = SharedMemoryImageStream_destroy(s);
    if (rc < 0) {
        fprintf(stderr, "%s: destroy: %s (code %d)\n", argv[1], SharedMemoryImageStream_errorstring(rc), (int)rc);
        return 1;
    }
    return 0;
}
