/*
 * shared_memory_image_client.h: the shared-memory image stream of ANSYS
 * EnSight, protocol 1.0, as a C library (libshared_memory_image_client).
 *
 * A drop-in for EnSight's header of the same name: the names, types and
 * values below are the protocol's and must not change. The server side
 * (putframe and the server options), which EnSight keeps private, is
 * published here too.
 *
 * Client:
 *     SharedMemoryImageStream s;
 *     SharedMemoryFrame f;
 *     SharedMemoryImageStream_create(filename, IMAGESTREAM_OPTIONS_NONE, &s);
 *     if (SharedMemoryImageStream_lock(s, &f) == IMAGESTREAM_NOERROR) {
 *         ... read f->iWidth * f->iHeight * 3 bytes of RGB at f->buffer ...
 *         SharedMemoryImageStream_unlock(s);
 *     }
 *     SharedMemoryImageStream_destroy(s);
 *
 * Server:
 *     SharedMemoryImageStream_create(filename, IMAGESTREAM_OPTIONS_SERVER, &s);
 *     struct _SharedMemoryFrame frame = { number, width, height, pixels };
 *     SharedMemoryImageStream_putframe(s, &frame);
 *     SharedMemoryImageStream_destroy(s);
 *
 * Threads: every function may be called from any thread, also on one
 * stream from several threads at once (the library serializes them) and
 * destroy racing another call. A locked frame belongs to the thread that
 * locked it: unlock from another thread answers IMAGESTREAM_NOT_LOCKED, and a
 * second lock while it is held answers IMAGESTREAM_LOCKED. A client stream
 * created without IMAGESTREAM_OPTIONS_NOTHREADS runs one background thread of
 * its own, which destroy stops.
 *
 * Handles: a stream handle is an opaque id, never dereferenced by the
 * library. After destroy, the handle answers IMAGESTREAM_STALE_HANDLE (a
 * second destroy included); the frame struct and pixels from lock are invalid.
 *
 * Peers: a second live server (or client) on one file is refused with
 * IMAGESTREAM_PEER_BUSY; the role of a process that died is taken over.
 *
 * fork(): a stream created before fork() answers IMAGESTREAM_FORKED in the
 * child; destroy in the child releases it (NOERROR) without touching the
 * parent's stream. Create a new stream in the child instead.
 *
 * Every function accepts NULL for any pointer argument and answers
 * IMAGESTREAM_BAD_ARGS; none of them aborts or unwinds into the caller.
 */
#ifndef SHARED_MEMORY_IMAGE_CLIENT_H
#define SHARED_MEMORY_IMAGE_CLIENT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMAGESTREAM_API_VERSION "1.0"

/* Return codes. Non-negative values are outcomes, negative ones failures. */
typedef int SharedMemoryImageError;

#define IMAGESTREAM_UNCONNECTED 4          /* no client is connected; the frame was not queued */
#define IMAGESTREAM_RECONNECTING 3         /* the file already carried a stream; the new stream works */
#define IMAGESTREAM_NO_FRAMEAVAILABLE 2    /* no new frame to read */
#define IMAGESTREAM_NO_BUFFERAVAILABLE 1   /* no free buffer: the frame was dropped */
#define IMAGESTREAM_NOERROR 0              /* success */
#define IMAGESTREAM_BAD_ARGS (-1)          /* an argument is invalid (NULL, zero size, unknown option bit) */
#define IMAGESTREAM_NOT_LOCKED (-2)        /* unlock without a lock */
#define IMAGESTREAM_BAD_FILE_SIZE (-3)     /* file missing or shorter than 64 bytes */
#define IMAGESTREAM_UNABLE_TO_OPEN_FILE (-4) /* cannot open read-write, or not a regular file */
#define IMAGESTREAM_UNABLE_TO_MAP_FILE (-5) /* mmap failed */
#define IMAGESTREAM_MEMORY_ALLOC_ERROR (-6) /* out of memory */
#define IMAGESTREAM_THREAD_CREATE_ERROR (-7) /* could not start the client's background thread */
#define IMAGESTREAM_IS_SERVER (-8)         /* a client-only call on a server stream */
#define IMAGESTREAM_IS_NOTSERVER (-9)      /* a server-only call on a client stream */
#define IMAGESTREAM_FRAME_TOO_LARGE (-10)  /* one row (width * 3 bytes) does not fit in a buffer */
#define IMAGESTREAM_LOCKED (-11)           /* not allowed while a frame is locked */

/* Codes of this library beyond EnSight's range (from -100 down). */
#define IMAGESTREAM_PEER_BUSY (-100)       /* another live process holds this role (server or client) on the file */
#define IMAGESTREAM_CLOSED (-101)          /* the stream was closed */
#define IMAGESTREAM_FORKED (-102)          /* the stream was created before fork(); unusable in the child */
#define IMAGESTREAM_NO_SPACE (-103)        /* the file system has no room for the stream file */
#define IMAGESTREAM_SERVER_GONE (-104)     /* the server process has exited */
#define IMAGESTREAM_FILE_REPLACED (-105)   /* the file's path now names another file */
#define IMAGESTREAM_FILE_TRUNCATED (-106)  /* the file was truncated by another process */
#define IMAGESTREAM_FILE_RESIZED (-107)    /* the file changed size while open */
#define IMAGESTREAM_STALE_HANDLE (-108)    /* a destroyed handle, or not a stream handle */
#define IMAGESTREAM_CANCELLED (-109)       /* a wait was cancelled */
#define IMAGESTREAM_STREAM_RESET (-110)    /* another process reset the buffers under the server */

/* Options of SharedMemoryImageStream_create. Any other bit is IMAGESTREAM_BAD_ARGS. */
#define IMAGESTREAM_OPTIONS_NONE 0x0               /* a client stream, with its background thread */
#define IMAGESTREAM_OPTIONS_INITBUFFERHEADERS 0x1  /* reset the buffer headers: a server stream */
#define IMAGESTREAM_OPTIONS_NOTHREADS 0x2          /* no background thread */
#define IMAGESTREAM_OPTIONS_SERVER 0x3             /* INITBUFFERHEADERS | NOTHREADS */
#define IMAGESTREAM_OPTIONS_FLIPVERTICAL 0x100     /* server: store rows bottom-up relative to the input */

/* A stream of either role; opaque. */
typedef struct _SharedMemoryImageStream *SharedMemoryImageStream;

/* One RGB frame: iWidth * iHeight pixels, 3 bytes each, rows packed, first
 * row first. From lock, the struct and the pixels belong to the stream, stay
 * valid until unlock or destroy, and are read-only (for a frame that fits one
 * buffer, buffer points into the shared memory itself). For putframe, the
 * caller owns both and buffer must hold iWidth * iHeight * 3 bytes. */
typedef struct _SharedMemoryFrame {
    uint32_t iFrame;  /* the server's frame number */
    uint32_t iWidth;  /* pixels per row */
    uint32_t iHeight; /* rows */
    uint8_t *buffer;  /* RGB pixels */
} *SharedMemoryFrame;

/* Open and map an existing stream file read-write. options: IMAGESTREAM_OPTIONS_*.
 * On NOERROR or RECONNECTING *stream is a working stream; on any other code
 * *stream is set to NULL. A client answers RECONNECTING when the file already
 * carried a stream. Missing or too small (< 64 bytes) file: BAD_FILE_SIZE. */
SharedMemoryImageError SharedMemoryImageStream_create(const char *filename, uint32_t options,
                                                      SharedMemoryImageStream *stream);

/* Client: lock the newest complete frame (older ones are dropped) and set
 * *frame to the stream's frame struct. NO_FRAMEAVAILABLE when none is waiting,
 * LOCKED when a frame is already locked, IS_SERVER on a server stream. On any
 * code but NOERROR *frame is left unchanged. */
SharedMemoryImageError SharedMemoryImageStream_lock(SharedMemoryImageStream stream, SharedMemoryFrame *frame);

/* Client: give the locked frame back. NOT_LOCKED without a lock. */
SharedMemoryImageError SharedMemoryImageStream_unlock(SharedMemoryImageStream stream);

/* Either role: a client unlocks and disconnects (its server then answers
 * UNCONNECTED); then the stream is unmapped, closed and freed. */
SharedMemoryImageError SharedMemoryImageStream_destroy(SharedMemoryImageStream stream);

/* A static NUL-terminated description of any code, known or not. Never NULL. */
const char *SharedMemoryImageStream_errorstring(SharedMemoryImageError err);

/* Server: publish one frame (copied; the caller keeps frame and buffer).
 * UNCONNECTED when no client is connected and NO_BUFFERAVAILABLE when the
 * client holds both buffers (the frame is dropped in both cases);
 * FRAME_TOO_LARGE when one row does not fit in a buffer (a frame larger than
 * a buffer travels in bands of rows); IS_NOTSERVER on a client stream. */
SharedMemoryImageError SharedMemoryImageStream_putframe(SharedMemoryImageStream stream, SharedMemoryFrame frame);

#ifdef __cplusplus
}
#endif

#endif /* SHARED_MEMORY_IMAGE_CLIENT_H */
