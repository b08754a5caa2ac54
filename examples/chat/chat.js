// ferry chat: nicknames, rooms, who is online, typing, history on join, delivery ticks, unread
// counts and reconnects that lose nothing, on ferry's client (/ferry/ferry.min.js) and the relay
// of tools/ferry (or examples/chat-server, which speaks the same).
//
// What the server offers (docs/server.md, "What clients can do"):
//   emit("join",    {room}, ack)               -> {ok, room, members:[{id,name}], history:[...]}
//   emit("leave",   {room}, ack)               -> {ok, room}
//   emit("publish", {room, event, data}, ack)  -> {ok, id}; the others get event(data, meta)
//   emit("receipt", {room, id}, ack)           -> {ok}; the publisher gets receipt {room, id, by}
//   on("presence",  {room, joined|left: {id,name}})
// The nickname travels in the CONNECT auth payload: io({auth: {name}}).
//
// Never losing a message: each message carries a client id (cid) chosen here. Messages typed
// while offline wait in this page's outbox (○) and go out once the rooms are joined again;
// after every reconnect the page joins its rooms again, and the history in the answers fills
// what it missed; a message of ours that never got its answer and is not in the history is
// sent again. Whatever arrives twice (replay, history, a resend) is shown once, by id and cid.
"use strict";

const $ = (id) => document.getElementById(id);
const TYPING_EVERY = 2000; // ms between our typing signals while keys are pressed
const TYPING_SHOWN = 4000; // ms a typing signal is shown without a newer one
const MAX_MESSAGES = 500;  // kept per room in this page

// name -> {members: Map(id -> name), messages: [], seen: Set(id|cid), unread, typing: Map}
const rooms = new Map();
const outbox = []; // our messages not yet answered by the server, in order: {room, m}
let socket = null;
let active = null;
let nick = "";
let online = false;
let everConnected = false;
let lastTyping = 0;
let resync = ""; // why the last reconnection was not recovered (ferry's recovery_failed)

const REASONS = { // ferry's client's reason codes (docs/client.md), in words
  start: "first transport of the session", forced: "the only transport allowed",
  remembered: "it worked last time on this site", reconnect: "first transport after a reconnect",
  "network-online": "the browser came back online", promoted: "its probe answered in time",
  "ws-refused": "WebSocket refused", "ws-mute": "WebSocket went mute", "ws-closed": "WebSocket closed",
  "sse-refused": "SSE refused", "sse-buffered": "SSE buffered by a proxy", "sse-mute": "SSE went mute",
  "poll-cut": "held polls were cut", "poll-mute": "polling went mute", "poll-error": "a poll failed",
  "post-error": "a POST failed", "probe-timeout": "a probe timed out",
};

function setStatus(text, on) {
  const s = $("status");
  s.textContent = text;
  s.className = "status " + (on ? "on" : "off");
  if (!on) {
    $("transport").textContent = "-";
    $("reason").textContent = "";
    $("reason-text").textContent = "";
  }
}

// ferry's client says which transport it is on and why, at every switch.
function showTransport(e) {
  $("transport").textContent = e.to;
  $("reason").textContent = e.reason ? `(${e.reason})` : "";
  $("reason-text").textContent = REASONS[e.reason] || "";
}

function showError(where, text) {
  $(where).textContent = text || "";
}

function roomState(name) {
  if (!rooms.has(name))
    rooms.set(name, { members: new Map(), messages: [], seen: new Set(), unread: 0, typing: new Map() });
  return rooms.get(name);
}

function renderRooms() {
  const ul = $("rooms");
  ul.replaceChildren();
  let unread = 0;
  for (const [name, st] of rooms) {
    const li = document.createElement("li");
    li.dataset.room = name;
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    li.append(label);
    if (name === active) li.className = "active";
    if (st.unread > 0) {
      const u = document.createElement("span");
      u.className = "unread";
      u.textContent = String(st.unread);
      li.append(u);
      unread += st.unread;
    }
    li.addEventListener("click", () => switchTo(name));
    ul.append(li);
  }
  document.title = (unread ? `(${unread}) ` : "") + "ferry chat";
}

function renderMembers() {
  const ul = $("members");
  ul.replaceChildren();
  $("members-room").textContent = active || "";
  if (!active) return;
  const names = [...roomState(active).members.values()].sort((a, b) => a.localeCompare(b));
  $("online-count").textContent = `(${names.length})`;
  for (const name of names) {
    const li = document.createElement("li");
    li.textContent = name;
    ul.append(li);
  }
}

function renderTyping() {
  const st = active && rooms.get(active);
  const now = Date.now();
  const who = st ? [...st.typing].filter(([, t]) => now - t < TYPING_SHOWN).map(([n]) => n).sort() : [];
  $("typing").textContent = who.length === 0 ? "" :
    `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…`;
}
setInterval(renderTyping, 500);

function renderMessages() {
  const ol = $("messages");
  ol.replaceChildren();
  $("room-title").textContent = active ? `# ${active}` : "";
  if (!active) return;
  for (const m of roomState(active).messages) ol.append(messageItem(m));
  ol.scrollTop = ol.scrollHeight;
  renderTyping();
}

function clock(ts) {
  const d = new Date(ts || Date.now());
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function tickOf(m) {
  return m.state === "pending" ? "○" : m.state === "delivered" ? "✓✓" : "✓";
}

function messageItem(m) {
  const li = document.createElement("li");
  m.li = li;
  if (m.system) {
    li.className = "system";
    li.textContent = m.text;
    return li;
  }
  if (m.mine) li.className = "mine";
  if (m.past) li.classList.add("past");
  const time = document.createElement("time");
  time.textContent = clock(m.ts);
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = m.from;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.text;
  li.append(time, from, text);
  if (m.mine) {
    const tick = document.createElement("span");
    tick.className = "tick";
    tick.textContent = tickOf(m);
    if (m.by?.size) tick.title = `delivered to ${[...m.by].join(", ")}`;
    li.append(tick);
  }
  return li;
}

function refresh(m) {
  if (m.li?.isConnected) m.li.replaceWith(messageItem(m));
}

// Add a message to a room unless it is already there (by server id or by client id).
function addMessage(room, m) {
  const st = roomState(room);
  for (const k of [m.id, m.cid]) if (k && st.seen.has(k)) return false;
  for (const k of [m.id, m.cid]) if (k) st.seen.add(k);
  // History entries and replays may come after newer live ones: keep the order of server time.
  let at = st.messages.length;
  if (m.ts) while (at > 0 && st.messages[at - 1].ts > m.ts && !st.messages[at - 1].system) at--;
  st.messages.splice(at, 0, m);
  if (st.messages.length > MAX_MESSAGES) st.messages.shift();
  if (room === active) {
    if (at === st.messages.length - 1) {
      $("messages").append(messageItem(m));
      $("messages").scrollTop = $("messages").scrollHeight;
    } else renderMessages();
  } else if (!m.system && !m.mine && !m.past) {
    st.unread++;
    renderRooms();
  }
  return true;
}

// A chat message from someone else (live, replayed, or from a join's history).
function received(room, data, meta, past) {
  const st = roomState(room);
  const text = data && typeof data.text === "string" ? data.text : JSON.stringify(data);
  const cid = data && typeof data.cid === "string" ? data.cid : undefined;
  if (!meta.from) return addMessage(room, { system: true, text: `server: ${text}`, id: meta.id, ts: meta.ts });
  if (meta.from.name === nick && cid && st.messages.some((m) => m.mine && m.cid === cid)) {
    // Our own message, back through the history: the server has it.
    const m = st.messages.find((x) => x.mine && x.cid === cid);
    if (m.state === "pending") sentOk(room, m, meta.id);
    return false;
  }
  st.typing.delete(meta.from.name);
  const added = addMessage(room, { from: meta.from.name || meta.from.id, text, id: meta.id, cid,
    ts: meta.ts, past });
  // Tell the sender it arrived (the ✓✓ on its side).
  if (added && meta.id && socket.connected) socket.emit("receipt", { room, id: meta.id });
  if (room === active) renderTyping();
  return added;
}

function sentOk(room, m, id) {
  const i = outbox.findIndex((o) => o.m === m);
  if (i >= 0) outbox.splice(i, 1);
  if (m.state === "pending") m.state = "sent";
  if (id) {
    m.id = id;
    roomState(room).seen.add(id);
  }
  refresh(m);
}

// Publish one of our messages; it stays in the outbox until the server's answer.
function publish(room, m) {
  const attempt = (m.attempt = (m.attempt || 0) + 1);
  m.inFlight = true;
  socket.emit("publish", { room, event: "message", data: { text: m.text, cid: m.cid } }, (res) => {
    if (res && res.ok) {
      showError("chat-error", "");
      return sentOk(room, m, res.id);
    }
    if (attempt !== m.attempt || m.state !== "pending") return; // an older try, superseded
    // Refused (rate limit...): say so, keep it pending; the next reconnect sends it again.
    showError("chat-error", `not sent: ${res ? res.error : "no answer"}`);
  });
}

// After a reconnect: whatever is still pending goes out again, in order (the history of the
// join answers already marked as sent what the server had taken).
function flushOutbox() {
  for (const { room, m } of outbox) if (!m.inFlight && rooms.has(room)) publish(room, m);
}

function join(room) {
  return new Promise((resolve) => {
    // What was said before our first join is history; what a join after a reconnect brings
    // was missed, and counts as unread.
    const first = !rooms.has(room);
    socket.timeout(10000).emit("join", { room }, (err, res) => {
      if (err) return resolve({ ok: false, error: "the server did not answer" });
      if (res && res.ok) {
        const st = roomState(room);
        st.members = new Map((res.members || []).map((m) => [m.id, m.name]));
        for (const h of res.history || [])
          received(room, h.data, { room, from: h.from, id: h.id, ts: h.ts }, first);
        if (room === active) renderMembers();
      }
      resolve(res || { ok: false, error: "no answer" });
    });
  });
}

async function joinAndShow(room) {
  const res = await join(room);
  if (!res.ok) {
    showError("chat-error", `cannot join ${room}: ${res.error}`);
    return false;
  }
  showError("chat-error", "");
  switchTo(room);
  return true;
}

function switchTo(name) {
  active = name;
  roomState(name).unread = 0;
  renderRooms();
  renderMembers();
  renderMessages();
}

function connect() {
  // Same origin and path as the page: the server serves both. ?transports=polling (or
  // websocket, sse, short-polling, or a list) picks the transports, to try the chat on each.
  // shareAcrossTabs: every tab of the chat shares one connection to the server (docs/client.md).
  const opts = { auth: { name: nick }, shareAcrossTabs: true };
  const want = new URLSearchParams(location.search).get("transports");
  const known = ["polling", "websocket", "sse", "short-polling"];
  if (want) opts.transports = want.split(",").filter((t) => known.includes(t));
  socket = ferry.io(opts);
  window.chatSocket = socket; // for the browser tests
  socket.on("transport", showTransport);
  socket.io.on("reconnect_attempt", () => setStatus("reconnecting…", false));
  // The server could not restore our session (expired, gap, off...): the rejoin below resyncs.
  socket.on("recovery_failed", (e) => (resync = e?.reason || "unknown"));

  socket.on("connect", async () => {
    const again = everConnected;
    everConnected = true;
    if (!again) return setStatus("online", true);
    // Back after a reconnect: with connection-state recovery (socket.recovered) the server kept
    // our rooms and replays what we missed; without it we are a new socket in no room. Either
    // way, joining every room again is harmless and its history fills any gap.
    setStatus("syncing…", true);
    await Promise.all([...rooms.keys()].map(join));
    for (const o of outbox) o.m.inFlight = false; // answers on the old session will not come
    online = true;
    flushOutbox();
    setStatus(socket.recovered ? "online (recovered)" : resync ? `online (resynced: ${resync})` : "online", true);
    resync = "";
    renderMembers();
  });
  socket.on("disconnect", (reason) => {
    online = false;
    setStatus(`offline (${reason})`, false);
  });
  socket.on("connect_error", (err) => {
    setStatus("cannot connect", false);
    if (!everConnected) showError("login-error", err.message);
  });

  socket.on("message", (data, meta) => {
    if (!meta || typeof meta.room !== "string" || !rooms.has(meta.room)) return;
    received(meta.room, data, meta, false);
  });

  socket.on("typing", (data, meta) => {
    if (!meta?.from || !rooms.has(meta.room)) return;
    const st = roomState(meta.room);
    if (data && data.typing === false) st.typing.delete(meta.from.name);
    else st.typing.set(meta.from.name, Date.now());
    if (meta.room === active) renderTyping();
  });

  socket.on("receipt", (r) => {
    const st = r && rooms.get(r.room);
    const m = st?.messages.find((x) => x.mine && x.id === r.id);
    if (!m) return;
    if (m.state === "pending") sentOk(r.room, m, r.id);
    m.state = "delivered";
    (m.by ??= new Set()).add(r.by?.name);
    refresh(m);
  });

  socket.on("presence", (p) => {
    if (!p || !rooms.has(p.room)) return;
    const st = roomState(p.room);
    if (p.joined) {
      if ([...st.members.values()].includes(p.joined.name) && p.joined.name !== nick) {
        st.members.set(p.joined.id, p.joined.name); // the same person back after a reconnect
      } else {
        st.members.set(p.joined.id, p.joined.name);
        addMessage(p.room, { system: true, text: `${p.joined.name} joined` });
      }
    } else if (p.left) {
      const name = st.members.get(p.left.id) || p.left.name;
      st.members.delete(p.left.id);
      // An old socket of someone already back (a reconnect without recovery) is no departure.
      if (![...st.members.values()].includes(name)) {
        st.typing.delete(name);
        addMessage(p.room, { system: true, text: `${name} left` });
      }
    }
    if (p.room === active) renderMembers();
  });
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  nick = $("nick").value.trim();
  const room = $("first-room").value.trim();
  if (!nick || !room) return;
  $("enter").disabled = true;
  showError("login-error", "");
  connect();
  socket.once("connect", async () => {
    // A join lost with its session (an emit in flight on a lost session is at most once until
    // ferry's client has an outbox) is asked again; only the server's refusal ends here.
    let res = await join(room);
    for (let i = 0; i < 3 && res.error === "the server did not answer"; i++) res = await join(room);
    if (!res.ok) {
      showError("login-error", `cannot join ${room}: ${res.error}`);
      $("enter").disabled = false;
      socket.disconnect();
      everConnected = false;
      rooms.clear();
      return;
    }
    online = true;
    $("me").textContent = nick;
    $("login").hidden = true;
    $("chat").hidden = false;
    switchTo(room);
    $("message").focus();
  });
});

$("join-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const room = $("join-room").value.trim();
  if (!room) return;
  if (await joinAndShow(room)) $("join-room").value = "";
});

$("message").addEventListener("input", () => {
  const now = Date.now();
  if (!online || !active || now - lastTyping < TYPING_EVERY || !$("message").value) return;
  lastTyping = now;
  socket.volatile.emit("publish", { room: active, event: "typing", data: { typing: true } });
});

$("send-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("message").value;
  if (!text.trim() || !active) return;
  const room = active;
  const cid = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const m = { from: nick, text, cid, mine: true, state: "pending", ts: Date.now() };
  addMessage(room, m);
  outbox.push({ room, m });
  $("message").value = "";
  lastTyping = 0;
  if (online) {
    publish(room, m);
    socket.volatile.emit("publish", { room, event: "typing", data: { typing: false } });
  }
});

$("leave").addEventListener("click", () => {
  if (!active) return;
  const room = active;
  socket.emit("leave", { room }, () => {});
  rooms.delete(room);
  const next = rooms.keys().next();
  active = null;
  if (!next.done) switchTo(next.value);
  else {
    renderRooms();
    renderMembers();
    renderMessages();
  }
});
