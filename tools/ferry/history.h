/* The relay's recent history: the last publishes of chosen events per room, so that a client
 * joining a room (or joining it again after a reconnect) sees what was said before. Bounded
 * twice: at most per_room entries per room (the oldest of the room goes first) and at most
 * max_bytes in all (the oldest entry of the whole server goes first), counting each entry's
 * JSON text, its header and its room's record. A room's record lives while it holds entries.
 *
 * Each entry is kept as the JSON text of {id, ts, event, data, from?} and the socket id of
 * its publisher (for read receipts). Ids are "<epoch>-<n>": n counts publishes from 1, epoch is
 * the server's start time in base 36, so ids of a restarted server never repeat old ones. */
#ifndef FERRY_TOOL_HISTORY_H
#define FERRY_TOOL_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#define HISTORY_ID_MAX 32

typedef struct history_entry history_entry;
typedef struct history_room history_room;

typedef struct history {
    size_t per_room;  /* 0: history off */
    size_t max_bytes; /* all rooms together */
    size_t bytes;     /* in use */
    history_entry *oldest, *newest; /* every entry, in order of arrival */
    history_room *bucket[256];
    uint64_t seq;
    char epoch[16];
} history;

/* Set up an empty history (nothing is allocated until the first entry). */
void history_init(history *h, size_t per_room, size_t max_bytes, uint64_t now_ms);

/* On a cluster node (ids travel to the other nodes' histories): ids become
 * "<epoch>.<tag>-<n>", tag at most 5 characters of [0-9a-z], so that two nodes started in the
 * same millisecond never mint the same id. */
void history_set_tag(history *h, const char *tag);

/* The next publish id, written to out (NUL-terminated). */
void history_next_id(history *h, char out[HISTORY_ID_MAX]);

/* Keep json (len bytes, copied) as the newest entry of room, published by the socket sender
 * (NULL or "" for a backend). Returns 0, or -1 when it was not kept (history off, an entry
 * larger than max_bytes, or out of memory); older entries make room as the bounds say. */
int history_add(history *h, const char *room, const char *id, const char *sender,
                const char *json, size_t len);

/* The oldest entry of room (NULL: none), then history_entry_next() until NULL. Valid until
 * the next history_add() or history_free(). */
const history_entry *history_first(const history *h, const char *room);
const history_entry *history_entry_next(const history_entry *e);
const char *history_entry_json(const history_entry *e, size_t *len);
const char *history_entry_sender(const history_entry *e);

/* The entry of room with this id, or NULL (never kept, or dropped since). */
const history_entry *history_find(const history *h, const char *room, const char *id);

/* Free every entry. */
void history_free(history *h);

#endif
