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
    csrf = s.csrf; admin = s.admin; $("user").textContent = s.user; $("admin").hidden = !s.admin;
    $("livetitle").textContent = s.admin ? "All live streams" : "Your live streams";
    $("login").hidden = true; $("app").hidden = false;
  }

  // copyText puts text on the clipboard: the Clipboard API where the page is a
  // secure context (HTTPS, localhost), else a selected, off-screen textarea.
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const ta = document.createElement("textarea");
    ta.value = text; ta.setAttribute("readonly", ""); ta.style.position = "fixed"; ta.style.left = "-9999px";
    document.body.appendChild(ta); ta.select();
    const ok = document.execCommand("copy");
    ta.remove();
    if (!ok) throw new Error("copy failed: select the key and copy it by hand");
  }
  function copyButton(text) {
    const td = document.createElement("td"); const b = document.createElement("button");
    b.type = "button"; b.textContent = "Copy"; b.className = "copy";
    b.addEventListener("click", () => copyText(text)
      .then(() => { b.textContent = "Copied"; setTimeout(() => { b.textContent = "Copy"; }, 1500); })
      .catch((e) => showError(e.message)));
    td.appendChild(b); return td;
  }
  function link(href, text) {
    const a = document.createElement("a"); a.href = href; a.textContent = text; return a;
  }
  function linkCell(...links) {
    const td = document.createElement("td");
    links.forEach((l, i) => { if (i) td.append(" "); td.appendChild(l); });
    return td;
  }
  // vodPath encodes a recording's path (relative, with slashes) for /vod/.
  function vodPath(p) { return p.split("/").map(encodeURIComponent).join("/"); }
  function size(n) {
    if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + " GiB";
    if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
    return Math.round(n / 1024) + " KiB";
  }

  let admin = false;
  async function refresh() {
    if (!csrf) return;
    const [keys, live, log, recs] = await Promise.all([
      api("GET", "/api/keys"), api("GET", "/api/live"), api("GET", "/api/publishes"),
      api("GET", "/api/recordings")]);
    fill($("keys"), keys.map((k) => {
      const key = document.createElement("td"); const c = document.createElement("code");
      c.textContent = k.key; key.appendChild(c);
      return row([cell(k.app + "/" + k.stream), key, copyButton(k.key), cell(k.owner), cell(when(k.created_at)),
        cell(k.active ? "active" : "revoked " + when(k.revoked_at)),
        k.active ? button("Revoke", () => api("POST", "/api/keys/" + k.id + "/revoke"))
                 : button("Delete", () => api("DELETE", "/api/keys/" + k.id))]);
    }));
    // Mine: published with one of my keys; an admin's are all of them.
    fill($("live"), live.filter((s) => s.mine).map((s) => {
      const viewers = Object.values(s.subscribers || {}).reduce((a, b) => a + b, 0);
      const [app, stream] = s.key.split("/");
      const play = "/play/" + encodeURIComponent(app) + "/" + encodeURIComponent(stream);
      return row([linkCell(link(play, s.key)), cell(String(viewers)),
        cell(Math.round(s.bitrate_in_bps / 1000) + " kbit/s"),
        cell(Math.round(s.uptime_seconds) + " s"), linkCell(link(play, "play")),
        button("Kick", () => api("POST", "/api/streams/" + encodeURIComponent(app) + "/" +
          encodeURIComponent(stream) + "/kick"))]);
    }));
    // Recordings, one table per stream, newest first.
    const byStream = new Map();
    for (const r of recs) {
      const k = r.app + "/" + r.stream;
      if (!byStream.has(k)) byStream.set(k, []);
      byStream.get(k).push(r);
    }
    const parts = [];
    for (const [k, rs] of byStream) {
      const h = document.createElement("h3"); h.textContent = k;
      const table = document.createElement("table"); const body = document.createElement("tbody");
      body.className = "recordings";
      body.append(...rs.map((r) => row([
        cell(when(r.started_at)), cell(r.active ? "recording" : Math.round(r.duration_ms / 1000) + " s"),
        cell(r.active ? "" : size(r.bytes)), cell(admin ? (r.owner || "") : ""),
        linkCell(link("/vod/" + vodPath(r.path), r.path),
          link("/play/vod?file=" + encodeURIComponent(r.path), "play"))])));
      table.appendChild(body); parts.push(h, table);
    }
    if (parts.length === 0) {
      const p = document.createElement("p"); p.className = "muted"; p.textContent = "No recordings.";
      parts.push(p);
    }
    $("recordings").replaceChildren(...parts);
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
