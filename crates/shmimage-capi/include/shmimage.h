/*
 * shmimage.h: the native shared-memory image stream (shmimage/2) for C.
 *
 * Our own header, beside EnSight's shared_memory_image_client.h (which is
 * unchanged), in the same library: link with -lshared_memory_image_client
 * (pkg-config shared_memory_image_client). One writer, up to 64 readers each
 * at its own pace (lossless on request), frames of eleven pixel formats held
 * in place, with timestamps, flags and user metadata. The format is
 * described in docs/native-protocol.md.
 *
 * Handles are opaque 64-bit ids (0 is never one); a destroyed, released or
 * made-up handle answers SHMIMAGE_STALE_HANDLE. Every function may be called
 * from any thread. Timeouts are milliseconds: -1 = wait forever (still ended
 * by shmimage_close), 0 = poll. Functions return 0 on success, else a code
 * below; shmimage_errorstring(code) describes any code.
 */
#ifndef SHMIMAGE_H
#define SHMIMAGE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes (the same values as EnSight's header where they overlap). */
#define SHMIMAGE_OK                    0
#define SHMIMAGE_NO_FRAME_AVAILABLE    2    /* nothing new; a read's timeout */
#define SHMIMAGE_NO_SLOT_AVAILABLE     1    /* readers hold every slot; a loan's timeout */
#define SHMIMAGE_BAD_ARGS             (-1)
#define SHMIMAGE_NOT_FOUND            (-3)  /* the stream file does not exist */
#define SHMIMAGE_UNABLE_TO_OPEN_FILE  (-4)
#define SHMIMAGE_UNABLE_TO_MAP_FILE   (-5)
#define SHMIMAGE_FRAME_TOO_LARGE      (-10)
#define SHMIMAGE_PEER_BUSY            (-100) /* a live writer already serves the stream */
#define SHMIMAGE_CLOSED               (-101)
#define SHMIMAGE_FORKED               (-102) /* handle made before fork(), used in the child */
#define SHMIMAGE_WRITER_GONE          (-104) /* the writer exited; the reader stays usable */
#define SHMIMAGE_FILE_TRUNCATED       (-106)
#define SHMIMAGE_STALE_HANDLE         (-108)
#define SHMIMAGE_ALREADY_EXISTS       (-200)
#define SHMIMAGE_WRONG_PROTOCOL       (-201) /* an EnSight 1.0 file given to the native API */
#define SHMIMAGE_NOT_A_STREAM         (-202)
#define SHMIMAGE_UNSUPPORTED_VERSION  (-203)
#define SHMIMAGE_CORRUPT              (-204)
#define SHMIMAGE_READERS_FULL         (-205)
#define SHMIMAGE_METADATA_TOO_LARGE   (-206)
#define SHMIMAGE_INVALID_DESC         (-207)

/* Pixel formats. GStreamer video/x-raw names in brackets; NumPy dtype. */
typedef enum shmimage_format {
    SHMIMAGE_FORMAT_RGB8 = 1,      /* [RGB]  u1 (H,W,3) */
    SHMIMAGE_FORMAT_BGR8 = 2,      /* [BGR]  u1 (H,W,3) */
    SHMIMAGE_FORMAT_RGBA8 = 3,     /* [RGBA] u1 (H,W,4) */
    SHMIMAGE_FORMAT_BGRA8 = 4,     /* [BGRA] u1 (H,W,4) */
    SHMIMAGE_FORMAT_RGBX8 = 5,     /* [RGBx] u1 (H,W,4) */
    SHMIMAGE_FORMAT_BGRX8 = 6,     /* [BGRx] u1 (H,W,4) */
    SHMIMAGE_FORMAT_GRAY8 = 7,     /* [GRAY8] u1 (H,W) */
    SHMIMAGE_FORMAT_GRAY16_LE = 8, /* [GRAY16_LE] <u2 (H,W) */
    SHMIMAGE_FORMAT_GRAY32F = 9,   /* (no GStreamer name) <f4 (H,W) */
    SHMIMAGE_FORMAT_I420 = 10,     /* [I420] Y, U, V planes */
    SHMIMAGE_FORMAT_NV12 = 11      /* [NV12] Y, UV planes */
} shmimage_format;

#define SHMIMAGE_FLAG_BOTTOM_UP 0x1u        /* rows stored bottom-up */
#define SHMIMAGE_FLAG_USER_MASK 0xffff0000u /* free for applications */

typedef uint64_t shmimage_writer;
typedef uint64_t shmimage_reader;

typedef struct shmimage_plane {
    uint64_t offset;    /* from shmimage_frame.pixels */
    uint32_t stride;    /* bytes from one row to the next */
    uint32_t row_bytes; /* bytes of pixels in one row */
    uint32_t rows;
    uint32_t reserved;
} shmimage_plane;

/* A frame read in place (held until shmimage_frame_release), or a loaned
 * slot (pixels writable; handle is the loan, used up by commit or abandon). */
typedef struct shmimage_frame {
    uint64_t handle;
    uint32_t format; /* shmimage_format */
    uint32_t width;
    uint32_t height;
    uint32_t plane_count;
    shmimage_plane planes[3];
    uint64_t sequence; /* 0 for a loan: assigned at commit */
    uint64_t capture_mono_ns, capture_real_ns; /* CLOCK_MONOTONIC, CLOCK_REALTIME */
    uint64_t publish_mono_ns, publish_real_ns;
    uint32_t flags;
    uint32_t epoch; /* of the writer that wrote it; goes up at each takeover */
    uint64_t missed_before;
    uint8_t *pixels; /* len bytes */
    uint64_t len;
    const uint8_t *metadata;
    uint64_t metadata_len;
} shmimage_frame;

typedef struct shmimage_writer_options {
    uint32_t slots;          /* 2..64; 0 = 4 */
    uint32_t metadata_bytes; /* 0 = 4096 */
    uint64_t slot_bytes;     /* pixel bytes per slot (required to create) */
    int64_t lossless_wait_ms; /* how long to wait for lossless readers; -1 = as long as it takes */
} shmimage_writer_options;

/* Writer. create: a new file (SHMIMAGE_ALREADY_EXISTS if one is there);
 * open: an existing native stream, taking over a dead writer. */
int shmimage_writer_create(const char *path, const shmimage_writer_options *options, shmimage_writer *out);
int shmimage_writer_open(const char *path, const shmimage_writer_options *options, shmimage_writer *out);
/* One copy: stride 0 = packed rows. sequence may be NULL. */
int shmimage_writer_put(shmimage_writer w, uint32_t format, uint32_t width, uint32_t height, uint32_t stride,
                        const void *pixels, uint64_t len, const void *metadata, uint64_t metadata_len,
                        uint32_t flags, uint64_t *sequence);
/* Zero copy: rows padded to 64 bytes; draw into frame->pixels, then commit. */
int shmimage_writer_loan(shmimage_writer w, uint32_t format, uint32_t width, uint32_t height, int64_t timeout_ms,
                         shmimage_frame *frame);
int shmimage_loan_commit(uint64_t loan, const void *metadata, uint64_t metadata_len, uint32_t flags,
                         uint64_t *sequence);
int shmimage_loan_abandon(uint64_t loan);

/* Reader. */
int shmimage_reader_open(const char *path, int lossless, shmimage_reader *out);
int shmimage_reader_read(shmimage_reader r, int64_t timeout_ms, shmimage_frame *frame);
int shmimage_reader_missed(shmimage_reader r, uint64_t *missed);
int shmimage_frame_release(uint64_t frame);

/* Both. close ends every wait now (SHMIMAGE_CLOSED); destroy frees the handle. */
int shmimage_close(uint64_t writer_or_reader);
int shmimage_destroy(uint64_t writer_or_reader);
const char *shmimage_errorstring(int code);
const char *shmimage_format_name(uint32_t format); /* NULL if unknown */

#ifdef __cplusplus
}
#endif

#endif /* SHMIMAGE_H */
