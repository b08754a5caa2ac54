/* Static files from a folder, read with uv_fs_* so the loop never blocks on the disk.
 *
 * Path traversal is impossible by construction: the path is percent-decoded once by the
 * parser (a decoded NUL is refused there), then refused here when any segment is empty or
 * starts with a dot ("." and "..", and hidden files such as .git or .env), or when it holds a
 * backslash or a control character, so the joined path always stays below the root. The
 * checked path is also the only request text that reaches a response header (the redirect's
 * Location), so no CR/LF can be injected and no "//host" redirect can be made. */
#include "http/conn.h"

#include <fcntl.h>
#include <string.h>

#include "common/assert.h"
#include "common/log.h"
#include "common/mem.h"

#define STATIC_MAX_FILE (16u * 1024 * 1024)

typedef struct static_job {
    uv_fs_t fs;
    ferry_req *req; /* NULL once the connection went away */
    char *file;
    uv_file fd;
    ferry_buf *data;
    size_t off;
    int redirect_dir; /* the path names a folder without its trailing slash */
    int status;       /* the answer, once the file is closed */
} static_job;

static const struct {
    const char *ext;
    const char *type;
} mime_types[] = {
    {".html", "text/html; charset=UTF-8"},
    {".htm", "text/html; charset=UTF-8"},
    {".js", "text/javascript; charset=UTF-8"},
    {".mjs", "text/javascript; charset=UTF-8"},
    {".css", "text/css; charset=UTF-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".txt", "text/plain; charset=UTF-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},
    {".ico", "image/x-icon"},
    {".wasm", "application/wasm"},
    {".woff2", "font/woff2"},
};

static const char *mime_of(const char *file)
{
    const char *dot = strrchr(file, '.');
    if (dot != NULL)
        for (size_t i = 0; i < sizeof(mime_types) / sizeof(mime_types[0]); i++)
            if (strcasecmp(dot, mime_types[i].ext) == 0)
                return mime_types[i].type;
    return "application/octet-stream";
}

#define STATIC_MAX_PATH 1024

int ferry_static_path_is_safe(const char *path)
{
    size_t n = strlen(path);
    if (n == 0 || n > STATIC_MAX_PATH || path[0] != '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch < 0x20 || ch == 0x7f || ch == '\\')
            return 0;
    }
    const char *seg = path + 1;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (seg[0] == '.')
            return 0; /* ".", "..", and hidden files */
        if (len == 0 && end != NULL)
            return 0; /* "//": an empty segment (the last one may be empty: a folder) */
        if (end == NULL)
            return 1;
        seg = end + 1;
    }
}

static void on_abort(ferry_req *req, void *ud)
{
    static_job *job = ud;
    (void)req;
    job->req = NULL;
}

static void job_free(static_job *job)
{
    ferry_buf_release(job->data);
    ferry_mem_free(job->file);
    ferry_mem_free(job);
}

static void finish(static_job *job, int status)
{
    ferry_req *req = job->req;
    if (req != NULL) {
        if (status == 200) {
            ferry_slice s = {job->data->data, job->data->len, job->data};
            ferry_req_respond(req, 200, mime_of(job->file), "Cache-Control: no-cache\r\n", &s,
                              1);
        } else if (status == 301) {
            /* The path is echoed whole (it is bounded by max_header_bytes): a 2048-byte buffer
             * used to cut a long one and its CRLF, leaving the head unterminated. */
            size_t cap = sizeof("Location: /\r\n") + strlen(req->path);
            char *loc = ferry_mem_alloc(cap);
            if (loc == NULL) {
                ferry_req_respond_text(req, 503, NULL, NULL, 0);
            } else {
                ferry_strbuf sb;
                ferry_strbuf_init(&sb, loc, cap);
                ferry_strbuf_printf(&sb, "Location: %s/\r\n", req->path);
                FERRY_ASSERT(ferry_strbuf_error(&sb) == 0);
                ferry_req_respond(req, 301, NULL, loc, NULL, 0);
                ferry_mem_free(loc);
            }
        } else {
            static const char nf[] = "Not Found\n";
            ferry_req_respond_text(req, status, "text/plain; charset=UTF-8",
                                   status == 404 ? nf : "", status == 404 ? sizeof(nf) - 1 : 0);
        }
    }
    job_free(job);
}

static void on_fs_close(uv_fs_t *fs)
{
    static_job *job = fs->data;
    uv_fs_req_cleanup(fs);
    finish(job, job->status);
}

static void close_and_finish(static_job *job, int status)
{
    job->status = status;
    uv_loop_t *loop = job->fs.loop;
    if (uv_fs_close(loop, &job->fs, job->fd, on_fs_close) != 0)
        finish(job, status);
}

static void on_read(uv_fs_t *fs)
{
    static_job *job = fs->data;
    ssize_t n = fs->result;
    uv_fs_req_cleanup(fs);
    if (n < 0) {
        close_and_finish(job, 500);
        return;
    }
    job->off += (size_t)n;
    if (n == 0 || job->off >= job->data->len || job->req == NULL) {
        job->data->len = job->off; /* a file that shrank meanwhile */
        close_and_finish(job, 200);
        return;
    }
    uv_buf_t b = uv_buf_init(job->data->data + job->off, (unsigned)(job->data->len - job->off));
    if (uv_fs_read(fs->loop, &job->fs, job->fd, &b, 1, (int64_t)job->off, on_read) != 0)
        close_and_finish(job, 500);
}

static void on_fstat(uv_fs_t *fs)
{
    static_job *job = fs->data;
    int rc = (int)fs->result;
    uv_stat_t st = fs->statbuf;
    uv_fs_req_cleanup(fs);
    if (rc < 0) {
        close_and_finish(job, 500);
        return;
    }
    if ((st.st_mode & S_IFMT) == S_IFDIR) {
        close_and_finish(job, job->redirect_dir ? 301 : 404);
        return;
    }
    if ((st.st_mode & S_IFMT) != S_IFREG || st.st_size > STATIC_MAX_FILE) {
        close_and_finish(job, 404);
        return;
    }
    job->data = ferry_buf_new((size_t)st.st_size);
    if (job->data == NULL) {
        close_and_finish(job, 503);
        return;
    }
    if (st.st_size == 0) {
        close_and_finish(job, 200);
        return;
    }
    uv_buf_t b = uv_buf_init(job->data->data, (unsigned)job->data->len);
    if (uv_fs_read(fs->loop, &job->fs, job->fd, &b, 1, 0, on_read) != 0)
        close_and_finish(job, 500);
}

static void on_open(uv_fs_t *fs)
{
    static_job *job = fs->data;
    int rc = (int)fs->result;
    uv_fs_req_cleanup(fs);
    if (rc < 0) {
        finish(job, 404);
        return;
    }
    job->fd = rc;
    if (uv_fs_fstat(fs->loop, &job->fs, job->fd, on_fstat) != 0)
        close_and_finish(job, 500);
}

void ferry_static_serve(ferry_req *req)
{
    const char *root = req->conn->http->static_root;
    if (!ferry_static_path_is_safe(req->path)) {
        static const char msg[] = "Bad Request\n";
        ferry_req_respond_text(req, 400, "text/plain; charset=UTF-8", msg, sizeof(msg) - 1);
        return;
    }
    static_job *job = ferry_mem_calloc(1, sizeof(*job));
    size_t plen = strlen(req->path);
    int dir = req->path[plen - 1] == '/';
    size_t len = strlen(root) + plen + sizeof("index.html");
    char *file = job ? ferry_mem_alloc(len) : NULL;
    if (file == NULL) {
        ferry_mem_free(job);
        ferry_req_respond_text(req, 503, NULL, NULL, 0);
        return;
    }
    ferry_strbuf sb;
    ferry_strbuf_init(&sb, file, len);
    ferry_strbuf_puts(&sb, root);
    ferry_strbuf_puts(&sb, req->path);
    ferry_strbuf_puts(&sb, dir ? "index.html" : "");
    FERRY_ASSERT(ferry_strbuf_error(&sb) == 0); /* len counts the three pieces */
    job->file = file;
    job->req = req;
    job->redirect_dir = !dir;
    job->fs.data = job;
    ferry_req_hold(req, on_abort, job);
    if (uv_fs_open(req->conn->tcp.loop, &job->fs, file, O_RDONLY | O_CLOEXEC, 0, on_open) != 0)
        finish(job, 404);
}
