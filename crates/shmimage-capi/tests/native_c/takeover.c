/* Writer takeover through the C API.
 *   takeover PATH hang   creates the stream, puts one frame with metadata
 *                        "first", prints READY and sleeps until killed.
 *   takeover PATH open   finds the stream a killed writer left: create is
 *                        ALREADY_EXISTS, open takes it over; puts "second",
 *                        prints TOOK OVER and exits 0.
 * Any failing call prints FAIL and exits 1. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "shmimage.h"

static int fail(const char *what, int rc) {
    printf("FAIL %s: %d %s\n", what, rc, shmimage_errorstring(rc));
    return 1;
}

static int put(shmimage_writer w, const char *meta) {
    uint8_t px[4 * 2 * 4];
    memset(px, meta[0], sizeof px);
    return shmimage_writer_put(w, SHMIMAGE_FORMAT_BGRX8, 4, 2, 0, px, sizeof px, meta, strlen(meta), 0, NULL);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    shmimage_writer_options o = {4, 256, 4 * 2 * 4, -1};
    shmimage_writer w = 0;
    int rc;
    if (!strcmp(argv[2], "hang")) {
        if ((rc = shmimage_writer_create(argv[1], &o, &w))) return fail("create", rc);
        if ((rc = put(w, "first"))) return fail("put first", rc);
        printf("READY\n");
        fflush(stdout);
        for (;;) pause();
    }
    rc = shmimage_writer_create(argv[1], &o, &w);
    if (rc != SHMIMAGE_ALREADY_EXISTS) return fail("create over a stream", rc);
    if ((rc = shmimage_writer_open(argv[1], NULL, &w))) return fail("open (takeover)", rc);
    if ((rc = put(w, "second"))) return fail("put second", rc);
    printf("TOOK OVER\n");
    if ((rc = shmimage_destroy(w))) return fail("destroy", rc);
    return 0;
}
