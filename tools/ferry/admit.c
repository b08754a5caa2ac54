/* --client-token: a handshake shows the token in its URL (?token=, what a browser's
 * socket.io-client sends with `query: {token}`) or in an Authorization: Bearer header (Node
 * and other non-browser clients with extraHeaders). The check is synchronous: the decision is
 * given inside the admission callback. The comparison leaks nothing through its timing. */
#include "admit.h"

#include "publish.h"

static void on_admission(ferry_admission *a, void *ud)
{
    const app_config *cfg = ud;
    if (app_token_equal(ferry_admission_query(a, "token"), cfg->client_token) ||
        app_bearer_ok(ferry_admission_header(a, "authorization"), cfg->client_token))
        ferry_admission_allow(a);
    else
        ferry_admission_refuse(a, "Invalid client token");
}

int admit_install(ferry_server *srv, const app_config *cfg)
{
    if (cfg->client_token == NULL)
        return 0;
    return ferry_server_on_admission(srv, on_admission, (void *)cfg);
}
