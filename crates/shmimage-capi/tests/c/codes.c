/* codes DIR: reaches the return codes on purpose, including every kind of
 * misuse, in one process. Prints "reached NAME" for each code it got where
 * it expected it, and "text CODE DESCRIPTION" for errorstring; exits 1 on any
 * surprise. DIR is a private directory the caller removes afterwards. */
#include "common.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <shared_memory_image_client.h>

static int failures;
static int reached[32]; /* see slot() */

/* EnSight's codes -11..4 at 0..15, this library's -100.. from 16 on. */
static int slot(int code) { return code >= -11 ? code + 11 : 16 + (-100 - code); }

static const struct {
    int code;
    const char *name;
} names[] = {
#define NAME(c) { c, #c }
    NAME(IMAGESTREAM_UNCONNECTED),     NAME(IMAGESTREAM_RECONNECTING),
    NAME(IMAGESTREAM_NO_FRAMEAVAILABLE), NAME(IMAGESTREAM_NO_BUFFERAVAILABLE),
    NAME(IMAGESTREAM_NOERROR),         NAME(IMAGESTREAM_BAD_ARGS),
    NAME(IMAGESTREAM_NOT_LOCKED),      NAME(IMAGESTREAM_BAD_FILE_SIZE),
    NAME(IMAGESTREAM_UNABLE_TO_OPEN_FILE), NAME(IMAGESTREAM_UNABLE_TO_MAP_FILE),
    NAME(IMAGESTREAM_MEMORY_ALLOC_ERROR), NAME(IMAGESTREAM_THREAD_CREATE_ERROR),
    NAME(IMAGESTREAM_IS_SERVER),       NAME(IMAGESTREAM_IS_NOTSERVER),
    NAME(IMAGESTREAM_FRAME_TOO_LARGE), NAME(IMAGESTREAM_LOCKED),
    NAME(IMAGESTREAM_PEER_BUSY),       NAME(IMAGESTREAM_CLOSED),
    NAME(IMAGESTREAM_FORKED),          NAME(IMAGESTREAM_NO_SPACE),
    NAME(IMAGESTREAM_SERVER_GONE),     NAME(IMAGESTREAM_FILE_REPLACED),
    NAME(IMAGESTREAM_FILE_TRUNCATED),  NAME(IMAGESTREAM_FILE_RESIZED),
    NAME(IMAGESTREAM_STALE_HANDLE),    NAME(IMAGESTREAM_CANCELLED),
    NAME(IMAGESTREAM_STREAM_RESET),
#undef NAME
};

#define EXPECT(call, want)                                                                              \
    do {                                                                                                \
        int rc_ = (call);                                                                               \
        if (rc_ != (want)) {                                                                            \
            fprintf(stderr, "line %d: %s = %d (%s), want %s\n", __LINE__, #call, rc_,                   \
                    SharedMemoryImageStream_errorstring(rc_), #want);                                   \
            failures++;                                                                                 \
        } else if ((want) <= 4 && slot(want) >= 0 && slot(want) < 32) {                                 \
            reached[slot(want)] = 1;                                                                    \
        }                                                                                               \
    } while (0)

#define CHECK(cond)                                                                                     \
    do {                                                                                                \
        if (!(cond)) {                                                                                  \
            fprintf(stderr, "line %d: failed: %s\n", __LINE__, #cond);                                  \
            failures++;                                                                                 \
        }                                                                                               \
    } while (0)

static void make_file(const char *path, off_t len)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, len) != 0) {
        perror(path);
        exit(2);
    }
    close(fd);
}

static void fill(uint8_t *p, uint32_t n, uint32_t w, uint32_t h)
{
    for (uint32_t r = 0; r < h; r++)
        for (uint32_t c = 0; c < w; c++)
            for (uint32_t k = 0; k < 3; k++)
                *p++ = pattern(n, r, c, k);
}

static int matches(SharedMemoryFrame f)
{
    const uint8_t *p = f->buffer;
    for (uint32_t r = 0; r < f->iHeight; r++)
        for (uint32_t c = 0; c < f->iWidth; c++)
            for (uint32_t k = 0; k < 3; k++)
                if (*p++ != pattern(f->iFrame, r, c, k))
                    return 0;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: codes DIR\n");
        return 2;
    }
    char stream[4096], tiny[4096], missing[4096];
    snprintf(stream, sizeof stream, "%s/stream", argv[1]);
    snprintf(tiny, sizeof tiny, "%s/tiny", argv[1]);
    snprintf(missing, sizeof missing, "%s/missing", argv[1]);
    /* n = (4096 - 48) / 2 = 2024 payload bytes a buffer: 674 pixels a row. */
    make_file(stream, 4096);
    make_file(tiny, 10);

    SharedMemoryImageStream srv = NULL, cli = NULL, cli2 = NULL;
    SharedMemoryFrame f = NULL;
    static uint8_t px[700 * 3];
    struct _SharedMemoryFrame frame = { 1, 4, 2, px };

    /* create: arguments, files, options. A failed create clears the handle. */
    srv = (SharedMemoryImageStream)&frame;
    EXPECT(SharedMemoryImageStream_create(NULL, IMAGESTREAM_OPTIONS_SERVER, &srv), IMAGESTREAM_BAD_ARGS);
    CHECK(srv == NULL);
    EXPECT(SharedMemoryImageStream_create(stream, IMAGESTREAM_OPTIONS_SERVER, NULL), IMAGESTREAM_BAD_ARGS);
    EXPECT(SharedMemoryImageStream_create(missing, IMAGESTREAM_OPTIONS_SERVER, &srv), IMAGESTREAM_BAD_FILE_SIZE);
    EXPECT(SharedMemoryImageStream_create(missing, IMAGESTREAM_OPTIONS_NONE, &srv), IMAGESTREAM_BAD_FILE_SIZE);
    EXPECT(SharedMemoryImageStream_create(tiny, IMAGESTREAM_OPTIONS_SERVER, &srv), IMAGESTREAM_BAD_FILE_SIZE);
    EXPECT(SharedMemoryImageStream_create(argv[1], IMAGESTREAM_OPTIONS_NONE, &srv),
           IMAGESTREAM_UNABLE_TO_OPEN_FILE);
    EXPECT(SharedMemoryImageStream_create(stream, 0x4, &srv), IMAGESTREAM_BAD_ARGS);
    EXPECT(SharedMemoryImageStream_create(stream, IMAGESTREAM_OPTIONS_SERVER | 0x80000000u, &srv),
           IMAGESTREAM_BAD_ARGS);
    CHECK(srv == NULL);

    /* NULL handles. */
    EXPECT(SharedMemoryImageStream_lock(NULL, &f), IMAGESTREAM_BAD_ARGS);
    EXPECT(SharedMemoryImageStream_unlock(NULL), IMAGESTREAM_BAD_ARGS);
    EXPECT(SharedMemoryImageStream_putframe(NULL, &frame), IMAGESTREAM_BAD_ARGS);
    EXPECT(SharedMemoryImageStream_destroy(NULL), IMAGESTREAM_BAD_ARGS);

    /* A server before any client, and server misuse. */
    EXPECT(SharedMemoryImageStream_create(stream, IMAGESTREAM_OPTIONS_SERVER, &srv), IMAGESTREAM_NOERROR);
    /* A second server on a live stream is refused (before: accepted, its
     * frames mixed with the first one's). */
    {
        SharedMemoryImageStream srv2 = (SharedMemoryImageStream)(uintptr_t)1;
        EXPECT(SharedMemoryImageStream_create(stream, IMAGESTREAM_OPTIONS_SERVER, &srv2), IMAGESTREAM_PEER_BUSY);
        CHECK(srv2 == NULL);
    }
    CHECK(srv != NULL);
    EXPECT(SharedMemoryImageStream_putframe(srv, &frame), IMAGESTREAM_UNCONNECTED);
    EXPECT(SharedMemoryImageStream_lock(srv, &f), IMAGESTREAM_IS_SERVER);
    EXPECT(SharedMemoryImageStream_unlock(srv), IMAGESTREAM_IS_SERVER);
    EXPECT(SharedMemoryImageStream_putframe(srv, NULL), IMAGESTREAM_BAD_ARGS);
    struct _SharedMemoryFrame bad = { 1, 4, 2, NULL };
    EXPECT(SharedMemoryImageStream_putframe(srv, &bad), IMAGESTREAM_BAD_ARGS);
    bad = (struct _SharedMemoryFrame){ 1, 0, 2, px };
    EXPECT(SharedMemoryImageStream_putframe(srv, &bad), IMAGESTREAM_BAD_ARGS);
    bad = (struct _SharedMemoryFrame){ 1, 4, 0, px };
    EXPECT(SharedMemoryImageStream_putframe(srv, &bad), IMAGESTREAM_BAD_ARGS);
    /* w * h * 3 overflows 64 bits: refused before any byte is read. */
    bad = (struct _SharedMemoryFrame){ 1, UINT32_MAX, UINT32_MAX, px };
    EXPECT(SharedMemoryImageStream_putframe(srv, &bad), IMAGESTREAM_BAD_ARGS);
    /* 700 * 3 = 2100 > 2024: one row does not fit. */
    bad = (struct _SharedMemoryFrame){ 1, 700, 1, px };
    EXPECT(SharedMemoryImageStream_putframe(srv, &bad), IMAGESTREAM_FRAME_TOO_LARGE);

    /* A client, and client misuse. */
    EXPECT(SharedMemoryImageStream_create(stream, IMAGESTREAM_OPTIONS_NOTHREADS, &cli), IMAGESTREAM_NOERROR);
    EXPECT(SharedMemoryImageStream_putframe(cli, &frame), IMAGESTREAM_IS_NOTSERVER);
    EXPECT(SharedMemoryImageStream_lock(cli, &f), IMAGESTREAM_NO_FRAMEAVAILABLE);
    EXPECT(SharedMemoryImageStream_unlock(cli), IMAGESTREAM_NOT_LOCKED);
    EXPECT(SharedMemoryImageStream_lock(cli, NULL), IMAGESTREAM_BAD_ARGS);
    CHECK(f == NULL);

    /* Two frames fill both buffers; a third is dropped. */
    for (uint32_t n = 1; n <= 2; n++) {
        frame.iFrame = n;
        fill(px, n, frame.iWidth, frame.iHeight);
        EXPECT(SharedMemoryImageStream_putframe(srv, &frame), IMAGESTREAM_NOERROR);
    }
    frame.iFrame = 3;
    fill(px, 3, frame.iWidth, frame.iHeight);
    EXPECT(SharedMemoryImageStream_putframe(srv, &frame), IMAGESTREAM_NO_BUFFERAVAILABLE);

    /* lock takes the newest and drops the older one. */
    EXPECT(SharedMemoryImageStream_lock(cli, &f), IMAGESTREAM_NOERROR);
    CHECK(f != NULL && f->iFrame == 2 && f->iWidth == 4 && f->iHeight == 2 && f->buffer != NULL);
    CHECK(f != NULL && matches(f));
    SharedMemoryFrame g = f;
    EXPECT(SharedMemoryImageStream_lock(cli, &g), IMAGESTREAM_LOCKED);
    CHECK(g == f);
    EXPECT(SharedMemoryImageStream_unlock(cli), IMAGESTREAM_NOERROR);
    CHECK(f->buffer == NULL && f->iFrame == 2);
    EXPECT(SharedMemoryImageStream_unlock(cli), IMAGESTREAM_NOT_LOCKED);
    EXPECT(SharedMemoryImageStream_lock(cli, &f), IMAGESTREAM_NO_FRAMEAVAILABLE);

    /* Frame 3 again, left locked: destroy must unlock it. */
    EXPECT(SharedMemoryImageStream_putframe(srv, &frame), IMAGESTREAM_NOERROR);
    EXPECT(SharedMemoryImageStream_lock(cli, &f), IMAGESTREAM_NOERROR);
    CHECK(f->iFrame == 3 && matches(f));

    /* A second client while the first is alive is refused, and takes nothing. */
    EXPECT(SharedMemoryImageStream_create(stream, IMAGESTREAM_OPTIONS_NOTHREADS, &cli2), IMAGESTREAM_PEER_BUSY);
    CHECK(cli2 == NULL);
    CHECK(f->iFrame == 3 && matches(f));
    EXPECT(SharedMemoryImageStream_destroy(cli), IMAGESTREAM_NOERROR);
    /* With its client gone the server is unconnected again. */
    EXPECT(SharedMemoryImageStream_putframe(srv, &frame), IMAGESTREAM_UNCONNECTED);

    /* A client that died holding a frame left CLIENT_LOCKED (3) in buffer 0:
     * the next client takes over its role and says so. */
    {
        int fd = open(stream, O_RDWR);
        uint32_t locked = 3;
        CHECK(fd >= 0 && pwrite(fd, &locked, 4, 20) == 4);
        close(fd);
    }
    EXPECT(SharedMemoryImageStream_create(stream, IMAGESTREAM_OPTIONS_NOTHREADS, &cli2), IMAGESTREAM_RECONNECTING);
    CHECK(cli2 != NULL);
    frame.iFrame = 4;
    fill(px, 4, frame.iWidth, frame.iHeight);
    EXPECT(SharedMemoryImageStream_putframe(srv, &frame), IMAGESTREAM_NOERROR);
    EXPECT(SharedMemoryImageStream_lock(cli2, &f), IMAGESTREAM_NOERROR);
    CHECK(f->iFrame == 4 && matches(f));
    EXPECT(SharedMemoryImageStream_destroy(cli2), IMAGESTREAM_NOERROR);
    /* Use after destroy: the handle is stale, never dereferenced. */
    EXPECT(SharedMemoryImageStream_destroy(cli2), IMAGESTREAM_STALE_HANDLE);
    EXPECT(SharedMemoryImageStream_lock(cli2, &f), IMAGESTREAM_STALE_HANDLE);
    EXPECT(SharedMemoryImageStream_unlock(cli2), IMAGESTREAM_STALE_HANDLE);
    EXPECT(SharedMemoryImageStream_putframe(cli2, &frame), IMAGESTREAM_STALE_HANDLE);
    EXPECT(SharedMemoryImageStream_lock((SharedMemoryImageStream)(uintptr_t)0x1234, &f), IMAGESTREAM_STALE_HANDLE);
    EXPECT(SharedMemoryImageStream_putframe(srv, &frame), IMAGESTREAM_UNCONNECTED);

    /* A client with its background thread, destroyed while a frame waits. */
    EXPECT(SharedMemoryImageStream_create(stream, IMAGESTREAM_OPTIONS_NONE, &cli), IMAGESTREAM_NOERROR);
    EXPECT(SharedMemoryImageStream_putframe(srv, &frame), IMAGESTREAM_NOERROR);
    EXPECT(SharedMemoryImageStream_destroy(cli), IMAGESTREAM_NOERROR);
    /* The file changes size under a live server: grown, then cut. */
    {
        struct stat st;
        CHECK(stat(stream, &st) == 0);
        int fd = open(stream, O_RDWR);
        CHECK(fd >= 0 && ftruncate(fd, st.st_size + 4096) == 0);
        EXPECT(SharedMemoryImageStream_putframe(srv, &frame), IMAGESTREAM_FILE_RESIZED);
        CHECK(ftruncate(fd, st.st_size) == 0);
        EXPECT(SharedMemoryImageStream_putframe(srv, &frame), IMAGESTREAM_UNCONNECTED);
        CHECK(ftruncate(fd, 64) == 0);
        EXPECT(SharedMemoryImageStream_putframe(srv, &frame), IMAGESTREAM_FILE_TRUNCATED);
        CHECK(ftruncate(fd, st.st_size) == 0);
        close(fd);
    }

    EXPECT(SharedMemoryImageStream_destroy(srv), IMAGESTREAM_NOERROR);

    /* Every code, and some that are not codes, has a static text. */
    const int unknown[] = { 5, -12, 100, INT_MIN, INT_MAX };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *t = SharedMemoryImageStream_errorstring(names[i].code);
        CHECK(t != NULL && t[0] != '\0');
        CHECK(t == SharedMemoryImageStream_errorstring(names[i].code));
        printf("text %d %s\n", names[i].code, t ? t : "(null)");
    }
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *t = SharedMemoryImageStream_errorstring(unknown[i]);
        CHECK(t != NULL && t[0] != '\0');
        printf("text %d %s\n", unknown[i], t ? t : "(null)");
    }

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (reached[slot(names[i].code)])
            printf("reached %s\n", names[i].name);
    printf("failures %d\n", failures);
    return failures != 0;
}
