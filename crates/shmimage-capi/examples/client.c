#include <stdio.h>
#include <unistd.h>
#include <shared_memory_image_client.h>

int main(int argc, char **argv) {
    SharedMemoryImageStream s;
    SharedMemoryFrame f;
    if (argc != 2 || SharedMemoryImageStream_create(argv[1], IMAGESTREAM_OPTIONS_NONE, &s) < 0) return 1;
    while (SharedMemoryImageStream_lock(s, &f) != IMAGESTREAM_NOERROR) usleep(1000);
    printf("frame %u: %ux%u, first pixel %u %u %u\n", f->iFrame, f->iWidth, f->iHeight,
           f->buffer[0], f->buffer[1], f->buffer[2]);
    SharedMemoryImageStream_unlock(s);
    return SharedMemoryImageStream_destroy(s);
}
