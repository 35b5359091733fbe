// The legacy home page, fed by the new API: the list comes from GET /api/notes,
// new notes arrive over server-sent events from /api/events, and the form posts
// to /api/notes. On every (re)connection the page subscribes first and fetches the
// list after the server's "ready" event, so no note created in between is lost;
// notes are keyed by id, so none is shown twice.
(function () {
  "use strict";

  const app = document.getElementById("notes-app");
  const api = app.dataset.api;
  const list = document.getElementById("notes");
  const liveStatus = document.getElementById("live-status");
  const errorBox = document.getElementById("error");
  const form = document.getElementById("note-form");
  let loaded = false;
  let live = false;

  function showState() {
    list.dataset.state = loaded && live ? "live" : loaded ? "loaded" : "loading";
    liveStatus.textContent = live ? "connected" : "reconnecting…";
  }

  function showError(error) {
    errorBox.hidden = false;
    errorBox.textContent = String(error);
  }

  function render(note) {
    if (list.querySelector(`li[data-note-id="${note.id}"]`)) {
      return;
    }
    const item = document.createElement("li");
    item.dataset.noteId = String(note.id);
    const link = document.createElement("a");
    link.href = `/notes/${note.id}/`;
    link.textContent = note.text;
    item.append(link);
    // Keep the list in id order, whichever arrived first: the fetch or the event.
    const next = Array.from(list.children).find((li) => Number(li.dataset.noteId) > note.id);
    list.insertBefore(item, next || null);
  }

  async function load() {
    const response = await fetch(`${api}/notes`, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      throw new Error(`GET ${api}/notes answered ${response.status}`);
    }
    for (const note of await response.json()) {
      render(note);
    }
    loaded = true;
    showState();
  }

  const events = new EventSource(`${api}/events`);
  events.addEventListener("ready", () => {
    live = true;
    showState();
    load().catch(showError);
  });
  events.addEventListener("note", (event) => render(JSON.parse(event.data)));
  events.addEventListener("error", () => {
    live = false;
    showState();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = form.elements.text.value.trim();
    if (!text) {
      return;
    }
    const response = await fetch(`${api}/notes`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ text }),
    });
    if (!response.ok) {
      showError(`POST ${api}/notes answered ${response.status}`);
      return;
    }
    render(await response.json());
    form.reset();
  });
})();
