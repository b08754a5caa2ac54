/* Bounded per-room history of the relay (history.h). Rooms are found through a small hash
 * table; each room chains its entries oldest first, and every entry is also on one list of
 * the whole server in order of arrival, so that the global byte bound drops the oldest entry
 * of all in O(1) (it is always the oldest of its own room too). */
#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct history_entry {
    history_entry *room_next;          /* newer entry of the same room */
    history_entry *all_prev, *all_next; /* server-wide order of arrival */
    history_room *room;
    size_t size; /* bytes counted against max_bytes */
    size_t len;  /* of json */
    char id[HISTORY_ID_MAX];
    char sender[32];
    char json[];
};

struct history_room {
    history_room *next; /* in its hash bucket */
    history_entry *oldest, *newest;
    size_t count;
    size_t size;
    char name[];
};

static unsigned bucket_of(const char *s)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h & 255u;
}

void history_init(history *h, size_t per_room, size_t max_bytes, uint64_t now_ms)
{
    memset(h, 0, sizeof(*h));
    h->per_room = per_room;
    h->max_bytes = max_bytes;
    /* The start time in base 36: short, and different for every start of the server. */
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[now_ms % 36];
        now_ms /= 36;
    } while (now_ms > 0 && n < sizeof(tmp) - 1);
    for (size_t i = 0; i < n; i++)
        h->epoch[i] = tmp[n - 1 - i];
    h->epoch[n] = '\0';
}

void history_set_tag(history *h, const char *tag)
{
    size_t n = strlen(h->epoch);
    h->epoch[n++] = '.';
    for (size_t i = 0; tag[i] != '\0' && i < 5 && n < sizeof(h->epoch) - 1; i++)
        if ((tag[i] >= '0' && tag[i] <= '9') || (tag[i] >= 'a' && tag[i] <= 'z'))
            h->epoch[n++] = tag[i];
    h->epoch[n] = '\0';
}

void history_next_id(history *h, char out[HISTORY_ID_MAX])
{
    snprintf(out, HISTORY_ID_MAX, "%s-%llu", h->epoch, (unsigned long long)++h->seq);
}

static history_room *find_room(const history *h, const char *name, history_room ***link)
{
    history_room **p = (history_room **)&h->bucket[bucket_of(name)];
    for (; *p != NULL; p = &(*p)->next)
        if (strcmp((*p)->name, name) == 0)
            break;
    if (link != NULL)
        *link = p;
    return *p;
}

/* Drop the oldest entry of its room (and of the server list), freeing the room when empty. */
static void drop_oldest_of(history *h, history_room *r)
{
    history_entry *e = r->oldest;
    r->oldest = e->room_next;
    if (r->oldest == NULL)
        r->newest = NULL;
    r->count--;
    if (e->all_prev != NULL)
        e->all_prev->all_next = e->all_next;
    else
        h->oldest = e->all_next;
    if (e->all_next != NULL)
        e->all_next->all_prev = e->all_prev;
    else
        h->newest = e->all_prev;
    h->bytes -= e->size;
    free(e);
    if (r->count == 0) {
        history_room **link;
        find_room(h, r->name, &link);
        *link = r->next;
        h->bytes -= r->size;
        free(r);
    }
}

int history_add(history *h, const char *room, const char *id, const char *sender,
                const char *json, size_t len)
{
    size_t rlen = strlen(room);
    size_t esize = sizeof(history_entry) + len + 1;
    size_t rsize = sizeof(history_room) + rlen + 1;
    if (h->per_room == 0 || esize + rsize > h->max_bytes)
        return -1;
    history_room **link;
    history_room *r = find_room(h, room, &link);
    if (r != NULL && r->count >= h->per_room)
        drop_oldest_of(h, r); /* may free r when per_room is 1 */
    r = find_room(h, room, &link);
    size_t need = esize + (r == NULL ? rsize : 0);
    while (h->oldest != NULL && h->bytes + need > h->max_bytes) {
        drop_oldest_of(h, h->oldest->room);
        r = find_room(h, room, &link);
        need = esize + (r == NULL ? rsize : 0);
    }
    history_entry *e = malloc(esize);
    if (e == NULL)
        return -1;
    if (r == NULL) {
        r = malloc(rsize);
        if (r == NULL) {
            free(e);
            return -1;
        }
        memset(r, 0, sizeof(*r));
        memcpy(r->name, room, rlen + 1);
        r->size = rsize;
        h->bytes += rsize;
        *link = r;
    }
    memset(e, 0, sizeof(*e));
    e->room = r;
    e->size = esize;
    e->len = len;
    snprintf(e->id, sizeof(e->id), "%s", id);
    snprintf(e->sender, sizeof(e->sender), "%s", sender ? sender : "");
    memcpy(e->json, json, len);
    e->json[len] = '\0';
    if (r->newest != NULL)
        r->newest->room_next = e;
    else
        r->oldest = e;
    r->newest = e;
    r->count++;
    e->all_prev = h->newest;
    if (h->newest != NULL)
        h->newest->all_next = e;
    else
        h->oldest = e;
    h->newest = e;
    h->bytes += esize;
    return 0;
}

const history_entry *history_first(const history *h, const char *room)
{
    const history_room *r = find_room(h, room, NULL);
    return r != NULL ? r->oldest : NULL;
}

const history_entry *history_entry_next(const history_entry *e)
{
    return e->room_next;
}

const char *history_entry_json(const history_entry *e, size_t *len)
{
    *len = e->len;
    return e->json;
}

const char *history_entry_sender(const history_entry *e)
{
    return e->sender;
}

const history_entry *history_find(const history *h, const char *room, const char *id)
{
    for (const history_entry *e = history_first(h, room); e != NULL; e = e->room_next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

void history_free(history *h)
{
    while (h->oldest != NULL)
        drop_oldest_of(h, h->oldest->room);
}
