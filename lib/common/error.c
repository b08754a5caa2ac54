/* Error and reason strings. */
#include "ferry.h"

const char *ferry_strerror(int err)
{
    switch (-err) {
    case 0:
        return "success";
    case FERRY_EIO:
        return "I/O error";
    case FERRY_ECLOSED:
        return "closed";
    case FERRY_ETIMEDOUT:
        return "timed out";
    case FERRY_EPROTO:
        return "protocol error";
    case FERRY_EUTF8:
        return "invalid UTF-8";
    case FERRY_EUNSUPPORTED:
        return "not supported";
    case FERRY_ELIMIT:
        return "limit reached";
    case FERRY_ETOOBIG:
        return "too large";
    case FERRY_EQUEUEFULL:
        return "send queue full";
    case FERRY_EINVAL:
        return "invalid argument";
    case FERRY_EBUSY:
        return "busy";
    case FERRY_ENOTFOUND:
        return "not found";
    case FERRY_EEXIST:
        return "already exists";
    case FERRY_ENOMEM:
        return "out of memory";
    case FERRY_ECALLBACK:
        return "refused by callback";
    }
    if (err < 0 && err > -10000)
        return uv_strerror(err);
    return "unknown error";
}

const char *ferry_reason_str(ferry_reason reason)
{
    switch (reason) {
    case FERRY_REASON_TRANSPORT_CLOSE:
        return "transport close";
    case FERRY_REASON_TRANSPORT_ERROR:
    case FERRY_REASON_QUEUE_FULL:
        return "transport error";
    case FERRY_REASON_PING_TIMEOUT:
        return "ping timeout";
    case FERRY_REASON_PARSE_ERROR:
        return "parse error";
    case FERRY_REASON_FORCED_CLOSE:
        return "forced close";
    case FERRY_REASON_SERVER_SHUTTING_DOWN:
        return "server shutting down";
    case FERRY_REASON_SERVER_NAMESPACE_DISCONNECT:
        return "server namespace disconnect";
    case FERRY_REASON_CLIENT_NAMESPACE_DISCONNECT:
        return "client namespace disconnect";
    case FERRY_REASON_FORCED_SERVER_CLOSE:
        return "forced server close";
    }
    return "transport error";
}
