/* Functions shared by the files of lib/socket (private). */
#ifndef FERRY_SOCKET_INTERNAL_H
#define FERRY_SOCKET_INTERNAL_H

#include "socket/sio.h"
#include "socket/socket.h"

/* namespace.c */
ferry_namespace *sio_nsp_find(ferry_sio *sio, const char *name);
int sio_handlers_set(sio_handlers *h, const char *event, ferry_event_cb cb, void *ud,
                     size_t max);
const sio_handler *sio_handlers_find(const sio_handlers *h, const char *event);
void sio_handlers_free(sio_handlers *h);
int sio_valid_name(const char *name);

/* client.c */
/* Queue a packet to the client's session; returns 0 or a negative error. */
int sio_client_send(sio_client *c, const sio_encoded *e);
/* Finish the closes still deferred (the server is being freed). */
void sio_client_drop_all(ferry_sio *sio);
/* Hold c around a call out that may close its session (common/life.h); the drop frees c when
 * the session's close finished meanwhile. */
void sio_client_hold(sio_client *c);
void sio_client_drop(sio_client *c);
/* Close the session once what is queued now has been handed to the transport (a tab's
 * client: end the tab only, telling the client "x<tab>"). */
void sio_client_close_after_drain(sio_client *c);
/* End tab t's client: its sockets leave for reason (docs/protocol.md section 11); notify:
 * send "x<tab>" first. */
void sio_client_tab_end(sio_client *t, ferry_reason reason, int notify);

/* socket.c */
ferry_socket *sio_socket_new(sio_client *c, ferry_namespace *nsp, cJSON *auth);
void sio_socket_retain(ferry_socket *s);
void sio_socket_release(ferry_socket *s);
/* Add s to room through the adapter, whatever its state (connecting, a recovery rejoining);
 * 0, -FERRY_ELIMIT or -FERRY_ENOMEM. */
int sio_socket_join(ferry_socket *s, const char *room);
/* Run the namespace's middlewares, then connect (s is referenced by the caller). */
void sio_socket_start(ferry_socket *s);
/* The socket leaves: ack callbacks fail, the disconnect callback runs, rooms are left.
 * notify: send DISCONNECT to the client. */
void sio_socket_close(ferry_socket *s, ferry_reason reason, int notify);
/* The session went away under a socket still in its middlewares. */
void sio_socket_abandon(ferry_socket *s);
void sio_socket_on_event(ferry_socket *s, sio_packet *pkt);
void sio_socket_on_ack(ferry_socket *s, sio_packet *pkt);
/* Free the sockets still waiting for a middleware (server shutdown). */
void sio_socket_drop_waiting(ferry_sio *sio);

/* recovery.c: connection-state recovery */
int sio_recovery_on(const ferry_namespace *nsp);
/* The namespace's recovery window (ms) and log bounds in bytes and packets. */
uint32_t sio_recovery_window(const ferry_namespace *nsp);
size_t sio_recovery_max_bytes(const ferry_namespace *nsp);
size_t sio_recovery_max_packets(const ferry_namespace *nsp);
/* Encode an event with the next offset as its last argument and log it with its recipients:
 * the socket only, or the broadcast b. */
int sio_recovery_encode(ferry_namespace *nsp, const char *event, const cJSON *args,
                        const ferry_bcast *b, const ferry_socket *only, sio_encoded *out);
/* The length of `,"<offset>"` of the packet sio_recovery_encode() made last. */
size_t sio_recovery_offset_len(const ferry_namespace *nsp);
/* A broadcast from another node (an event packet without offset, for the sockets t selects):
 * out is in with the next offset as its last argument, logged with its recipients.
 * 0, -FERRY_EINVAL (not an event packet, or more rooms than a broadcast has) or -FERRY_ENOMEM. */
int sio_recovery_stamp(ferry_namespace *nsp, const ferry_adapter_target *t, const sio_encoded *in,
                       const char *origin, uint64_t origin_seq, sio_encoded *out);
/* A socket lost for a recoverable reason: keep its id, pid and rooms. */
void sio_recovery_save(ferry_socket *s, ferry_reason reason);
/* A new socket whose auth holds {pid, offset} of a saved one takes its id: 1, else 0. */
int sio_recovery_restore(ferry_socket *s);
/* On connect: rejoin the saved rooms; after the CONNECT reply: queue the missed packets. */
void sio_recovery_rejoin(ferry_socket *s);
void sio_recovery_replay(ferry_socket *s);
/* Forget a restore that will not happen (refused, or the session went away). */
void sio_recovery_discard(ferry_socket *s);
void sio_recovery_free(ferry_namespace *nsp);
/* A packet is being queued to s: note the logged packet it is (socket.c). */
void sio_recovery_queued(ferry_socket *s, const sio_encoded *e);
/* Hand data to the namespace's release callback, if it keeps socket data (and data != NULL). */
void sio_recovery_release_data(ferry_namespace *nsp, void *data);
/* Backpressure: the log's sequence number of e when e is the newest logged packet (being
 * delivered now), else 0. */
uint64_t sio_recovery_seq_of(const ferry_namespace *nsp, const sio_encoded *e);
/* SPILL: queue to s (through sio_bp_send) the logged packets after s->spill_pos meant for it
 * (its rooms now), while the session's queue stays within bound. 1: caught up; 0: more to come;
 * -FERRY_ELIMIT: a packet after spill_pos left the log (a gap); another negative: an error. */
int sio_recovery_catch_up(ferry_socket *s, size_t bound);

/* recovery_remote.c: connection-state recovery across nodes, kept in Redis (docs/scaling.md) */
#define SIO_OFFSET_MAX 3072 /* an offset: "<seq>" and, on several nodes, ";<node>=<seq>" each */
/* Is nsp's adapter one of several nodes that keep recovery state in Redis? */
int sio_rr_on(ferry_namespace *nsp);
/* The next number of this node's own broadcasts (its log in Redis). */
uint64_t sio_rr_own_next(ferry_namespace *nsp);
/* This node's id on several nodes, else NULL. */
const char *sio_rr_self(const ferry_namespace *nsp);
/* A broadcast from origin numbered seq is logged here. */
void sio_rr_note(ferry_namespace *nsp, const char *origin, uint64_t seq);
/* The offset of the logged packet local into buf: its length, or -1 when it does not fit. */
int sio_rr_offset(ferry_namespace *nsp, uint64_t local, char *buf, size_t cap);
/* An offset a client sent: 0 when this node gave it (*local set), 1 when another did, -1 when
 * it is none. */
int sio_rr_offset_local(ferry_namespace *nsp, const char *off, uint64_t *local);
/* Write s's record where other nodes find it (connected, joined, left, took an emit). */
void sio_rr_persist(ferry_socket *s);
/* pid's record is not needed any more. */
void sio_rr_forget(ferry_namespace *nsp, const char *pid);
/* s->rec_remote: look for its record in Redis; 1 when s waits for the answer (it then goes on
 * with sio_socket_start()), 0 when it goes on now. */
int sio_rr_begin(ferry_socket *s);
void sio_rr_free(ferry_namespace *nsp);

/* cluster.c: a command from another node (host->command, adapter.h) */
cJSON *sio_cluster_command(void *ctx, const cJSON *cmd);

/* backpressure.c */
/* Queue e to s under its namespace's policy (sio_socket_queue). */
int sio_bp_queue(ferry_socket *s, const sio_encoded *e, int volatile_);
/* A key buffer for a keyed emit on nsp ("<nsp>\0<key>"), or NULL when out of memory. */
ferry_buf *sio_bp_key_new(const ferry_namespace *nsp, const char *key);
/* Queue e to s's session as it is, no policy (marked volatile when flags say so). */
int sio_bp_send(ferry_socket *s, const sio_encoded *e, unsigned flags, ferry_buf *key);
/* A recovered socket gets what it missed (the logged packets after s->spill_pos) as a spilling
 * one catches up, whatever the policy: up to the bound now, the rest as transports take the
 * queue (recovery.c, sio_recovery_replay). */
void sio_bp_replay(ferry_socket *s);
/* ferry_socket.spilling: why logged events stay in the log for the socket. */
#define SIO_SPILL_BEHIND 1 /* SPILL: its queue reached the bound */
#define SIO_SPILL_REPLAY 2 /* a recovered socket receiving what it missed */

/* outbox.c: the outbox extension (client-to-server exactly once, docs/protocol.md 13) */
void sio_outbox_init(sio_outbox *ob);
void sio_outbox_free(sio_outbox *ob);
/* Move src's state into dst (dst must be empty, from sio_outbox_init); src is left empty. */
void sio_outbox_move(sio_outbox *dst, sio_outbox *src);
/* A new socket: does its CONNECT ask for the extension (and may it have it)? */
void sio_outbox_negotiate(ferry_socket *s);
/* Add the extension's key to the CONNECT answer o; 0 or -FERRY_ENOMEM. */
int sio_outbox_connect_data(const ferry_socket *s, cJSON *o);
/* After the CONNECT answer: send again the kept ack answers the client says it still awaits. */
void sio_outbox_resend_answers(ferry_socket *s);
/* An EVENT from a socket with the extension on: take its number (the last argument) off.
 * 1: pass it to the app; 0: a duplicate, dropped; -FERRY_EPROTO: no valid number;
 * -FERRY_ELIMIT: a gap (emits before it never came), refused: the caller closes the session
 * ("transport error") so that the client recovers and resends. */
int sio_outbox_take(ferry_socket *s, sio_packet *pkt);
/* After the app got a numbered emit: confirm to the client now and then. */
void sio_outbox_confirm(ferry_socket *s);
/* We answered a numbered emit's ack (ack id, encoded answer): keep it (bounded). Returns 1
 * when kept, 0 when not (no outbox, too big, out of memory). */
int sio_outbox_keep_answer(ferry_socket *s, int64_t id, const sio_encoded *e);

#endif
