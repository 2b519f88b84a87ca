/* limits DIR: the three codes that need an exhausted resource, reached by
 * lowering the address-space limit (RLIMIT_AS) just above what the process
 * already uses. Prints "reached NAME" for each; exits 1 on any surprise.
 * Not for valgrind, which manages the address space itself. */
#include "common.h"

#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <shared_memory_image_client.h>

static int failures;

static void expect(int rc, int want, const char *name, int line)
{
    if (rc == want) {
        printf("reached %s\n", name);
    } else {
        fprintf(stderr, "line %d: got %d (%s), want %s\n", line, rc, SharedMemoryImageStream_errorstring(rc), name);
        failures++;
    }
}
#define EXPECT(call, want) expect((call), (want), #want, __LINE__)

static void make_file(const char *path, off_t len)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, len) != 0) {
        perror(path);
        exit(2);
    }
    close(fd);
}

/* The process's current address-space size in bytes. */
static unsigned long long vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    if (kb == 0) {
        fprintf(stderr, "cannot read VmSize\n");
        exit(2);
    }
    return kb * 1024;
}

static void limit_address_space(unsigned long long headroom)
{
    struct rlimit r;
    getrlimit(RLIMIT_AS, &r);
    r.rlim_cur = vm_size() + headroom;
    if (setrlimit(RLIMIT_AS, &r) != 0) {
        perror("setrlimit");
        exit(2);
    }
}

static void unlimit_address_space(void)
{
    struct rlimit r;
    getrlimit(RLIMIT_AS, &r);
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_AS, &r);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: limits DIR\n");
        return 2;
    }
    char huge[4096], small[4096], banded[4096];
    snprintf(huge, sizeof huge, "%s/huge", argv[1]);
    snprintf(small, sizeof small, "%s/small", argv[1]);
    snprintf(banded, sizeof banded, "%s/banded", argv[1]);
    make_file(huge, 1LL << 36); /* sparse: 64 GiB of nothing */
    make_file(small, 4096);
    /* Two bands of 2731 rows of 1024 pixels, each filling a buffer. */
    const uint32_t w = 1024, h = 2 * 2731;
    make_file(banded, 48 + 2 * (off_t)w * 3 * 2731);

    /* Warm up without threads, so later failures are the ones meant: lazily
     * made state exists, and no thread stack is cached for reuse. */
    SharedMemoryImageStream s = NULL, c = NULL;
    EXPECT(SharedMemoryImageStream_create(small, IMAGESTREAM_OPTIONS_SERVER, &s), IMAGESTREAM_NOERROR);
    EXPECT(SharedMemoryImageStream_create(small, IMAGESTREAM_OPTIONS_NOTHREADS, &c), IMAGESTREAM_NOERROR);
    SharedMemoryImageStream_destroy(c);
    SharedMemoryImageStream_destroy(s);

    /* A mapping larger than the address space left. */
    limit_address_space(64u << 20);
    EXPECT(SharedMemoryImageStream_create(huge, IMAGESTREAM_OPTIONS_SERVER, &s), IMAGESTREAM_UNABLE_TO_MAP_FILE);
    unlimit_address_space();

    /* No room for the client's background thread's stack. */
    EXPECT(SharedMemoryImageStream_create(small, IMAGESTREAM_OPTIONS_SERVER, &s), IMAGESTREAM_NOERROR);
    limit_address_space(1u << 20);
    EXPECT(SharedMemoryImageStream_create(small, IMAGESTREAM_OPTIONS_NONE, &c), IMAGESTREAM_THREAD_CREATE_ERROR);
    unlimit_address_space();
    SharedMemoryImageStream_destroy(s);

    /* No room to assemble a banded frame. */
    EXPECT(SharedMemoryImageStream_create(banded, IMAGESTREAM_OPTIONS_SERVER, &s), IMAGESTREAM_NOERROR);
    EXPECT(SharedMemoryImageStream_create(banded, IMAGESTREAM_OPTIONS_NOTHREADS, &c), IMAGESTREAM_NOERROR);
    uint8_t *px = calloc((size_t)w * h, 3);
    if (!px)
        return 2;
    struct _SharedMemoryFrame frame = { 1, w, h, px };
    EXPECT(SharedMemoryImageStream_putframe(s, &frame), IMAGESTREAM_NOERROR);
    limit_address_space(4u << 20);
    SharedMemoryFrame f = NULL;
    int rc = SharedMemoryImageStream_lock(c, &f);
    if (rc == IMAGESTREAM_NO_FRAMEAVAILABLE)
        /* An engine that drops the frame without saying why: the caller
         * decides whether that is acceptable. */
        printf("oom lock IMAGESTREAM_NO_FRAMEAVAILABLE\n");
    else
        EXPECT(rc, IMAGESTREAM_MEMORY_ALLOC_ERROR);
    unlimit_address_space();
    free(px);
    SharedMemoryImageStream_destroy(c);
    SharedMemoryImageStream_destroy(s);

    printf("failures %d\n", failures);
    return failures != 0;
}
