/* libFuzzer target: the HTTP request path through the router, as a connection receives it
 * (lib/http/conn.c + request.c + router.c, then lib/engine and the transports the router picks),
 * against a real server on loopback (loopback.h).
 *
 * Input: byte 0 and byte 1 are the sizes of the pieces the rest is written in, alternately
 * (0: everything left at once), the loop running between pieces so each is a read of its own;
 * byte 2 picks the transport of a fresh session whose id replaces every "SID" in the rest
 * (polling, sse, short-polling), so per-session paths (polls, POSTs, probes, upgrades,
 * Last-Event-ID) are reachable. Checked: ASan/UBSan, and every answer starts with a status
 * line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loopback.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const transports[] = {"polling", "sse", "short-polling"};
    if (size < 3)
        return 0;
    lb_server(NULL);
    size_t piece[2] = {data[0], data[1]};
    const char *tr = transports[data[2] % 3];
    data += 3;
    size -= 3;
    char sid[32] = "none";
    int stream = -1;
    if (memmem(data, size, "SID", 3) != NULL && lb_open_session(tr, sid, &stream) != 0)
        return 0;
    lb_bytes in = {0}, out = {0};
    lb_subst_sid(data, size, sid, &in);
    int fd = lb_connect();
    size_t off = 0;
    for (int k = 0; off < in.len; k ^= 1) {
        size_t n = piece[k] == 0 || piece[k] > in.len - off ? in.len - off : piece[k];
        lb_send(fd, in.data + off, n);
        off += n;
        if (lb_pump(fd, &out, 1) != 0)
            break;
    }
    lb_pump(fd, &out, 3);
    lb_check_response(&out);
    lb_close(fd);
    if (stream >= 0)
        lb_close(stream);
    lb_bytes_free(&in);
    lb_bytes_free(&out);
    return 0;
}
