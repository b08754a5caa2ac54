// ferry chat: a first simple chat on ferry's relay (tools/ferry), with socket.io-client.
//
// What the server offers (docs/server.md):
//   emit("join",    {room}, ack)                -> ack {ok, room, members:[{id,name}]}
//   emit("leave",   {room}, ack)                -> ack {ok, room}
//   emit("publish", {room, event, data}, ack)   -> ack {ok}; the others in room get event(data, meta)
//   on("presence",  {room, joined|left: {id,name}})
// The nickname travels in the CONNECT auth payload: io({auth: {name}}).
"use strict";

const $ = (id) => document.getElementById(id);
const rooms = new Map(); // name -> {members: Map(id -> name), messages: [], unread: 0}
let socket = null;
let active = null;
let nick = "";

function setStatus(on, text) {
  const s = $("status");
  s.textContent = text;
  s.className = "status " + (on ? "on" : "off");
  $("transport").textContent = on && socket ? socket.io.engine.transport.name : "-";
  if (!on)
    $("reason").textContent = "";
}

// ferry's client says which transport it is on and why, at every switch.
function showTransport(e) {
  $("transport").textContent = e.to;
  $("reason").textContent = e.reason ? `(${e.reason})` : "";
}

function showError(where, text) {
  $(where).textContent = text || "";
}

function roomState(name) {
  if (!rooms.has(name)) rooms.set(name, { members: new Map(), messages: [], unread: 0 });
  return rooms.get(name);
}

function renderRooms() {
  const ul = $("rooms");
  ul.replaceChildren();
  for (const [name, st] of rooms) {
    const li = document.createElement("li");
    li.textContent = name;
    li.dataset.room = name;
    if (name === active) li.className = "active";
    if (st.unread > 0) {
      const u = document.createElement("span");
      u.className = "unread";
      u.textContent = `(${st.unread})`;
      li.append(u);
    }
    li.addEventListener("click", () => switchTo(name));
    ul.append(li);
  }
}

function renderMembers() {
  const ul = $("members");
  ul.replaceChildren();
  $("members-room").textContent = active || "";
  if (!active) return;
  const names = [...roomState(active).members.values()].sort((a, b) => a.localeCompare(b));
  for (const name of names) {
    const li = document.createElement("li");
    li.textContent = name;
    ul.append(li);
  }
}

function renderMessages() {
  const ol = $("messages");
  ol.replaceChildren();
  $("room-title").textContent = active ? `# ${active}` : "";
  if (!active) return;
  for (const m of roomState(active).messages) ol.append(messageItem(m));
  ol.scrollTop = ol.scrollHeight;
}

function messageItem(m) {
  const li = document.createElement("li");
  if (m.system) {
    li.className = "system";
    li.textContent = m.text;
    return li;
  }
  if (m.mine) li.className = "mine";
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = m.from;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.text;
  li.append(from, text);
  return li;
}

function addMessage(room, m) {
  const st = roomState(room);
  st.messages.push(m);
  if (st.messages.length > 500) st.messages.shift(); // bounded history per room
  if (room === active) {
    $("messages").append(messageItem(m));
    $("messages").scrollTop = $("messages").scrollHeight;
  } else {
    st.unread++;
    renderRooms();
  }
}

function switchTo(name) {
  active = name;
  roomState(name).unread = 0;
  renderRooms();
  renderMembers();
  renderMessages();
}

function join(room) {
  return new Promise((resolve) => {
    socket.timeout(5000).emit("join", { room }, (err, res) => {
      if (err) return resolve({ ok: false, error: "the server did not answer" });
      if (res && res.ok) {
        const st = roomState(room);
        st.members = new Map((res.members || []).map((m) => [m.id, m.name]));
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

function connect() {
  // Same origin and path as the page: ferry serves both. ?transports=polling (or websocket, sse,
  // short-polling, or a list) picks the transports, to try the chat on each.
  const opts = { auth: { name: nick } };
  const want = new URLSearchParams(location.search).get("transports");
  const known = ["polling", "websocket", "sse", "short-polling"];
  if (want) opts.transports = want.split(",").filter((t) => known.includes(t));
  socket = ferry.io(opts);
  socket.on("transport", showTransport);

  socket.on("connect", async () => {
    setStatus(true, "online");
    if (typeof socket.io.engine?.on === "function")
      socket.io.engine.on("upgrade", () => setStatus(true, "online"));
    // After a reconnect the server knows nothing of our rooms: join them again.
    for (const room of rooms.keys()) await join(room);
    renderMembers();
  });
  socket.on("disconnect", (reason) => setStatus(false, `offline (${reason})`));
  socket.on("connect_error", (err) => {
    setStatus(false, "cannot connect");
    showError("login-error", err.message);
  });

  socket.on("message", (data, meta) => {
    if (!meta || typeof meta.room !== "string" || !rooms.has(meta.room)) return;
    const text = data && typeof data.text === "string" ? data.text : JSON.stringify(data);
    if (meta.from) addMessage(meta.room, { from: meta.from.name || meta.from.id, text });
    else addMessage(meta.room, { system: true, text: `server: ${text}` });
  });

  socket.on("presence", (p) => {
    if (!p || !rooms.has(p.room)) return;
    const st = roomState(p.room);
    if (p.joined) {
      st.members.set(p.joined.id, p.joined.name);
      addMessage(p.room, { system: true, text: `${p.joined.name} joined` });
    } else if (p.left) {
      const name = st.members.get(p.left.id) || p.left.name;
      st.members.delete(p.left.id);
      addMessage(p.room, { system: true, text: `${name} left` });
    }
    if (p.room === active) renderMembers();
  });
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  nick = $("nick").value.trim();
  const room = $("first-room").value.trim();
  if (!nick || !room) return;
  $("enter").disabled = true;
  connect();
  socket.once("connect", async () => {
    const res = await join(room);
    if (!res.ok) {
      showError("login-error", `cannot join ${room}: ${res.error}`);
      $("enter").disabled = false;
      socket.disconnect();
      rooms.clear();
      return;
    }
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

$("send-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("message").value;
  if (!text.trim() || !active) return;
  const room = active;
  socket.timeout(5000).emit("publish", { room, event: "message", data: { text } }, (err, res) => {
    if (err || !res || !res.ok) {
      showError("chat-error", `not sent: ${err ? "the server did not answer" : res && res.error}`);
      return;
    }
    showError("chat-error", "");
    addMessage(room, { from: nick, text, mine: true });
  });
  $("message").value = "";
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
