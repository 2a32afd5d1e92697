// mtrelay console: talks to the session JSON API (same origin, cookie session).
// Every write call sends the X-CSRF-Token header of the session.
"use strict";
(function () {
  let csrf = "";
  const $ = (id) => document.getElementById(id);

  function showError(msg) { $("error").textContent = msg || ""; }

  async function api(method, path, body) {
    const opts = { method, headers: {}, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    if (r.status === 401 && path !== "/api/login") { loggedOut(); throw new Error("not logged in"); }
    let data = null;
    if (r.status !== 204) { try { data = await r.json(); } catch (e) { data = null; } }
    if (!r.ok) throw new Error((data && data.error) || (method + " " + path + ": " + r.status));
    return data;
  }

  // cell returns a td with text (never HTML: names come from users).
  function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
  function button(label, onclick) {
    const td = document.createElement("td"); const b = document.createElement("button");
    b.type = "button"; b.textContent = label;
    b.addEventListener("click", () => onclick().then(refresh).catch((e) => showError(e.message)));
    td.appendChild(b); return td;
  }
  function fill(tbody, rows) { tbody.replaceChildren(...rows); }
  function row(cells) { const tr = document.createElement("tr"); tr.append(...cells); return tr; }
  function when(t) { return t ? new Date(t).toLocaleString() : ""; }

  function loggedOut() {
    csrf = ""; $("app").hidden = true; $("login").hidden = false;
  }
  function loggedIn(s) {
    csrf = s.csrf; $("user").textContent = s.user; $("admin").hidden = !s.admin;
    $("login").hidden = true; $("app").hidden = false;
  }

  async function refresh() {
    if (!csrf) return;
    const [keys, live, log] = await Promise.all([
      api("GET", "/api/keys"), api("GET", "/api/live"), api("GET", "/api/publishes")]);
    fill($("keys"), keys.map((k) => {
      const key = document.createElement("td"); const c = document.createElement("code");
      c.textContent = k.key; key.appendChild(c);
      return row([cell(k.app + "/" + k.stream), key, cell(k.owner), cell(when(k.created_at)),
        cell(k.active ? "active" : "revoked " + when(k.revoked_at)),
        k.active ? button("Revoke", () => api("POST", "/api/keys/" + k.id + "/revoke"))
                 : button("Delete", () => api("DELETE", "/api/keys/" + k.id))]);
    }));
    fill($("live"), live.map((s) => {
      const viewers = Object.values(s.subscribers || {}).reduce((a, b) => a + b, 0);
      const [app, stream] = s.key.split("/");
      const name = document.createElement("td"); const a = document.createElement("a");
      a.href = "/play/" + encodeURIComponent(app) + "/" + encodeURIComponent(stream);
      a.textContent = s.key; name.appendChild(a);
      return row([name, cell(String(viewers)), cell(Math.round(s.bitrate_in_bps / 1000) + " kbit/s"),
        cell(Math.round(s.uptime_seconds) + " s"),
        s.mine ? button("Kick", () => api("POST", "/api/streams/" + encodeURIComponent(app) + "/" +
          encodeURIComponent(stream) + "/kick")) : cell("")]);
    }));
    fill($("log"), log.map((p) => row([cell(p.app_stream), cell(p.owner), cell(p.remote),
      cell(when(p.started_at)),
      cell(p.duration_seconds == null ? "live" : Math.round(p.duration_seconds) + " s")])));
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    api("POST", "/api/login", { username: f.get("username"), password: f.get("password") })
      .then((s) => { ev.target.reset(); showError(""); loggedIn(s); return refresh(); })
      .catch((e) => showError(e.message));
  });
  $("logout").addEventListener("click", () => {
    api("POST", "/api/logout").catch(() => {}).then(loggedOut);
  });
  $("newkey").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    api("POST", "/api/keys", { app: f.get("app"), stream: f.get("stream") })
      .then(() => { showError(""); return refresh(); })
      .catch((e) => showError(e.message));
  });

  api("GET", "/api/session").then((s) => { loggedIn(s); return refresh(); }).catch(() => loggedOut());
  setInterval(() => { refresh().catch((e) => showError(e.message)); }, 5000);
})();
