/* misuse MODE FILE: what careless C code does to a stream, one mode per run.
 *   threads  server + client in one process; a producer thread and two
 *            reader threads on ONE client stream; readers check that a locked
 *            frame never changes under them and that they cannot unlock
 *            each other's frame; then one thread destroys the client while
 *            the other keeps calling (STALE_HANDLE, no crash).
 *   fork     a client (with its background thread) and a server, a frame
 *            locked; fork(): in the child every call answers FORKED and
 *            destroy returns NOERROR without a word on stderr; the parent's
 *            stream goes on.
 *   hold     take the client role, print READY, sleep until killed.
 *   second   try to take the client role; print the code.
 *   hostile  server and client in one process run while another process
 *            scribbles over the headers; every answer must be a known code
 *            and every locked frame readable in full.
 * Prints "ok ..." and exits 0 when every check held; exits 1 otherwise. */
#include "common.h"

#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shared_memory_image_client.h>

#define W 64
#define H 32

static int failures;
#define CHECK(cond)                                                                                     \
    do {                                                                                                \
        if (!(cond)) {                                                                                  \
            fprintf(stderr, "line %d: failed: %s\n", __LINE__, #cond);                                  \
            __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);                                         \
        }                                                                                               \
    } while (0)
#define EXPECT(call, want)                                                                              \
    do {                                                                                                \
        int rc_ = (call);                                                                               \
        if (rc_ != (want)) {                                                                            \
            fprintf(stderr, "line %d: %s = %d (%s), want %s\n", __LINE__, #call, rc_,                   \
                    SharedMemoryImageStream_errorstring(rc_), #want);                                   \
            __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);                                         \
        }                                                                                               \
    } while (0)

static void fill(uint8_t *px, uint32_t n)
{
    for (uint32_t r = 0; r < H; r++)
        for (uint32_t c = 0; c < W; c++)
            for (uint32_t ch = 0; ch < 3; ch++)
                px[(r * W + c) * 3 + ch] = pattern(n, r, c, ch);
}

static int matches(const struct _SharedMemoryFrame *f)
{
    if (f->iWidth != W || f->iHeight != H || f->buffer == NULL)
        return 0;
    for (uint32_t r = 0; r < H; r++)
        for (uint32_t c = 0; c < W; c++)
            for (uint32_t ch = 0; ch < 3; ch++)
                if (f->buffer[(r * W + c) * 3 + ch] != pattern(f->iFrame, r, c, ch))
                    return 0;
    return 1;
}

static SharedMemoryImageStream srv, cli;
static volatile int stop;
static int verified;

static void *producer(void *arg)
{
    (void)arg;
    static uint8_t px[W * H * 3];
    for (uint32_t n = 1; !stop; n++) {
        fill(px, n);
        struct _SharedMemoryFrame f = { n, W, H, px };
        int rc = SharedMemoryImageStream_putframe(srv, &f);
        CHECK(rc == IMAGESTREAM_NOERROR || rc == IMAGESTREAM_NO_BUFFERAVAILABLE || rc == IMAGESTREAM_UNCONNECTED);
        sleep_us(100);
    }
    return NULL;
}

static int phase1_done;

static void *reader(void *arg)
{
    int id = (int)(intptr_t)arg;
    double end = now_s() + 2.0;
    /* Phase 1: both threads lock, check and unlock frames of one stream. */
    while (now_s() < end) {
        SharedMemoryFrame f;
        int rc = SharedMemoryImageStream_lock(cli, &f);
        if (rc != IMAGESTREAM_NOERROR) {
            CHECK(rc == IMAGESTREAM_NO_FRAMEAVAILABLE || rc == IMAGESTREAM_LOCKED);
            sleep_us(50);
            continue;
        }
        for (int i = 0; i < 3; i++) {
            CHECK(matches(f));
            sleep_us(200);
        }
        __atomic_add_fetch(&verified, 1, __ATOMIC_RELAXED);
        EXPECT(SharedMemoryImageStream_unlock(cli), IMAGESTREAM_NOERROR);
        /* Unlocking what this thread does not hold never frees the other's. */
        EXPECT(SharedMemoryImageStream_unlock(cli), IMAGESTREAM_NOT_LOCKED);
    }
    __atomic_add_fetch(&phase1_done, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&phase1_done, __ATOMIC_SEQ_CST) < 2)
        sleep_us(100);
    /* Phase 2: thread 0 destroys the stream while thread 1 keeps calling. */
    if (id == 0) {
        sleep_us(20000);
        EXPECT(SharedMemoryImageStream_destroy(cli), IMAGESTREAM_NOERROR);
        return NULL;
    }
    for (;;) {
        SharedMemoryFrame f;
        int rc = SharedMemoryImageStream_lock(cli, &f);
        if (rc == IMAGESTREAM_STALE_HANDLE)
            break;
        CHECK(rc == IMAGESTREAM_NOERROR || rc == IMAGESTREAM_NO_FRAMEAVAILABLE || rc == IMAGESTREAM_CLOSED);
        rc = SharedMemoryImageStream_unlock(cli);
        CHECK(rc == IMAGESTREAM_NOERROR || rc == IMAGESTREAM_NOT_LOCKED || rc == IMAGESTREAM_STALE_HANDLE ||
              rc == IMAGESTREAM_CLOSED);
    }
    return NULL;
}

static int threads(const char *file)
{
    EXPECT(SharedMemoryImageStream_create(file, IMAGESTREAM_OPTIONS_SERVER, &srv), IMAGESTREAM_NOERROR);
    EXPECT(SharedMemoryImageStream_create(file, IMAGESTREAM_OPTIONS_NONE, &cli), IMAGESTREAM_NOERROR);
    pthread_t p, r[2];
    pthread_create(&p, NULL, producer, NULL);
    for (intptr_t i = 0; i < 2; i++)
        pthread_create(&r[i], NULL, reader, (void *)i);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    stop = 1;
    pthread_join(p, NULL);
    SharedMemoryFrame f;
    EXPECT(SharedMemoryImageStream_lock(cli, &f), IMAGESTREAM_STALE_HANDLE);
    EXPECT(SharedMemoryImageStream_destroy(cli), IMAGESTREAM_STALE_HANDLE);
    EXPECT(SharedMemoryImageStream_destroy(srv), IMAGESTREAM_NOERROR);
    CHECK(verified > 10);
    printf("ok threads verified %d\n", verified);
    return failures != 0;
}

static int forked(const char *file)
{
    static uint8_t px[W * H * 3];
    EXPECT(SharedMemoryImageStream_create(file, IMAGESTREAM_OPTIONS_SERVER, &srv), IMAGESTREAM_NOERROR);
    EXPECT(SharedMemoryImageStream_create(file, IMAGESTREAM_OPTIONS_NONE, &cli), IMAGESTREAM_NOERROR);
    fill(px, 1);
    struct _SharedMemoryFrame fr = { 1, W, H, px };
    EXPECT(SharedMemoryImageStream_putframe(srv, &fr), IMAGESTREAM_NOERROR);
    SharedMemoryFrame f = NULL;
    double end = now_s() + 20;
    int rc;
    while ((rc = SharedMemoryImageStream_lock(cli, &f)) == IMAGESTREAM_NO_FRAMEAVAILABLE && now_s() < end)
        sleep_us(100);
    EXPECT(rc, IMAGESTREAM_NOERROR);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        SharedMemoryFrame g;
        EXPECT(SharedMemoryImageStream_lock(cli, &g), IMAGESTREAM_FORKED);
        EXPECT(SharedMemoryImageStream_unlock(cli), IMAGESTREAM_FORKED);
        EXPECT(SharedMemoryImageStream_putframe(srv, &fr), IMAGESTREAM_FORKED);
        EXPECT(SharedMemoryImageStream_destroy(cli), IMAGESTREAM_NOERROR);
        EXPECT(SharedMemoryImageStream_destroy(srv), IMAGESTREAM_NOERROR);
        _exit(failures != 0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(f != NULL && f->iFrame == 1 && matches(f));
    EXPECT(SharedMemoryImageStream_unlock(cli), IMAGESTREAM_NOERROR);
    fill(px, 2);
    fr.iFrame = 2;
    EXPECT(SharedMemoryImageStream_putframe(srv, &fr), IMAGESTREAM_NOERROR);
    while ((rc = SharedMemoryImageStream_lock(cli, &f)) == IMAGESTREAM_NO_FRAMEAVAILABLE && now_s() < end)
        sleep_us(100);
    EXPECT(rc, IMAGESTREAM_NOERROR);
    CHECK(rc != IMAGESTREAM_NOERROR || (f->iFrame == 2 && matches(f)));
    EXPECT(SharedMemoryImageStream_destroy(cli), IMAGESTREAM_NOERROR);
    EXPECT(SharedMemoryImageStream_destroy(srv), IMAGESTREAM_NOERROR);
    printf("ok fork\n");
    return failures != 0;
}

static int known(int rc)
{
    return (rc >= -11 && rc <= 4) || (rc <= -100 && rc >= -110);
}

static int hostile(const char *file)
{
    static uint8_t px[W * H * 3];
    EXPECT(SharedMemoryImageStream_create(file, IMAGESTREAM_OPTIONS_SERVER, &srv), IMAGESTREAM_NOERROR);
    int rc = SharedMemoryImageStream_create(file, IMAGESTREAM_OPTIONS_NOTHREADS, &cli);
    CHECK(rc == IMAGESTREAM_NOERROR || rc == IMAGESTREAM_RECONNECTING);
    printf("READY\n");
    fflush(stdout);
    unsigned long locked = 0, sum = 0;
    double end = now_s() + 2.0;
    for (uint32_t n = 1; now_s() < end; n++) {
        fill(px, n);
        struct _SharedMemoryFrame fr = { n, W, H, px };
        CHECK(known(SharedMemoryImageStream_putframe(srv, &fr)));
        SharedMemoryFrame f;
        rc = SharedMemoryImageStream_lock(cli, &f);
        CHECK(known(rc));
        if (rc == IMAGESTREAM_NOERROR) {
            /* Read every byte the struct promises: a bad size would fault. */
            size_t len = (size_t)f->iWidth * f->iHeight * 3;
            for (size_t i = 0; i < len; i++)
                sum += f->buffer[i];
            locked++;
            CHECK(known(SharedMemoryImageStream_unlock(cli)));
        }
    }
    EXPECT(SharedMemoryImageStream_destroy(cli), IMAGESTREAM_NOERROR);
    EXPECT(SharedMemoryImageStream_destroy(srv), IMAGESTREAM_NOERROR);
    printf("ok hostile locked %lu (sum %lu)\n", locked, sum);
    return failures != 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: misuse threads|fork|hold|second|hostile FILE\n");
        return 2;
    }
    const char *mode = argv[1], *file = argv[2];
    if (strcmp(mode, "threads") == 0)
        return threads(file);
    if (strcmp(mode, "fork") == 0)
        return forked(file);
    if (strcmp(mode, "hostile") == 0)
        return hostile(file);
    if (strcmp(mode, "hold") == 0) {
        EXPECT(SharedMemoryImageStream_create(file, IMAGESTREAM_OPTIONS_NONE, &cli), IMAGESTREAM_NOERROR);
        printf("READY\n");
        fflush(stdout);
        for (;;)
            sleep(1);
    }
    if (strcmp(mode, "second") == 0) {
        int rc = SharedMemoryImageStream_create(file, IMAGESTREAM_OPTIONS_NOTHREADS, &cli);
        printf("code %d\n", rc);
        CHECK(rc == IMAGESTREAM_PEER_BUSY ? cli == NULL : cli != NULL);
        if (cli != NULL)
            EXPECT(SharedMemoryImageStream_destroy(cli), IMAGESTREAM_NOERROR);
        return failures != 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
