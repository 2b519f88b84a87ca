// The header as a C++ translation unit sees it: it compiles with warnings as
// errors, links (the extern "C" guard gives unmangled names) and runs.
#include <shared_memory_image_client.h>

#include <cstddef>
#include <cstdio>
#include <cstring>

static_assert(sizeof(SharedMemoryImageError) == sizeof(int), "SharedMemoryImageError is an int");
static_assert(offsetof(struct _SharedMemoryFrame, iFrame) == 0, "frame layout");
static_assert(offsetof(struct _SharedMemoryFrame, iWidth) == 4, "frame layout");
static_assert(offsetof(struct _SharedMemoryFrame, iHeight) == 8, "frame layout");
static_assert(offsetof(struct _SharedMemoryFrame, buffer) == (sizeof(void *) == 8 ? 16 : 12), "frame layout");
static_assert(IMAGESTREAM_OPTIONS_SERVER == (IMAGESTREAM_OPTIONS_INITBUFFERHEADERS | IMAGESTREAM_OPTIONS_NOTHREADS),
              "SERVER = INITBUFFERHEADERS | NOTHREADS");

int main()
{
    SharedMemoryImageStream s = nullptr;
    SharedMemoryFrame f = nullptr;
    int bad = 0;
    bad |= SharedMemoryImageStream_create(nullptr, IMAGESTREAM_OPTIONS_NONE, &s) != IMAGESTREAM_BAD_ARGS;
    bad |= SharedMemoryImageStream_lock(s, &f) != IMAGESTREAM_BAD_ARGS;
    bad |= SharedMemoryImageStream_unlock(s) != IMAGESTREAM_BAD_ARGS;
    bad |= SharedMemoryImageStream_putframe(s, f) != IMAGESTREAM_BAD_ARGS;
    bad |= SharedMemoryImageStream_destroy(s) != IMAGESTREAM_BAD_ARGS;
    bad |= std::strcmp(IMAGESTREAM_API_VERSION, "1.0") != 0;
    std::printf("%s\n", SharedMemoryImageStream_errorstring(IMAGESTREAM_LOCKED));
    return bad;
}
