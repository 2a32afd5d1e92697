package session_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/session"
)

// publishWithKey asks the store about a publish of key with stream key k, as the
// rtmp layer does, and publishes on the hub with the decision's Owner and OnEnd.
func publishWithKey(t *testing.T, e *env, key, k string) (*relay.Publisher, relay.AccessDecision) {
	t.Helper()
	d, err := e.store.Authorize(t.Context(), relay.AccessRequest{
		Action: relay.ActionPublish, Key: key, Query: "key=" + k, Protocol: "rtmp", Remote: "127.0.0.1:1935",
	})
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if !d.Allow {
		return nil, d
	}
	p, err := e.hub.Publish(key, relay.PublisherInfo{Protocol: "rtmp", Owner: d.Owner, OnClose: d.OnEnd})
	if err != nil {
		t.Fatal(err)
	}
	return p, d
}

func (c *client) publishes() []session.Publish {
	c.t.Helper()
	code, b := c.do("GET", "/api/publishes", nil)
	if code != http.StatusOK {
		c.t.Fatalf("GET /api/publishes: %d %s", code, b)
	}
	var out []session.Publish
	if err := json.Unmarshal(b, &out); err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *client) createKey(app, stream string) session.Key {
	c.t.Helper()
	code, b := c.do("POST", "/api/keys", map[string]string{"app": app, "stream": stream})
	if code != http.StatusCreated {
		c.t.Fatalf("create key: %d %s", code, b)
	}
	var k session.Key
	json.Unmarshal(b, &k)
	return k
}

// TestPublishEnd: when the publisher closes, its publish_log row gets ended_at and a
// duration (recorded in the background through the service role); each user sees
// only their own rows.
func TestPublishEnd(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db)
	u := db.CreateRole(t, "pe", "pw", "mtrelay_user")
	other := db.CreateRole(t, "pe2", "pw", "mtrelay_user")
	c, co := e.client(t), e.client(t)
	if c.login(u, "pw") != 200 || co.login(other, "pw") != 200 {
		t.Fatal("login failed")
	}
	k := c.createKey("live", "cam")

	p, d := publishWithKey(t, e, "live/cam", k.Key)
	if p == nil || d.Owner != u || d.OnEnd == nil {
		t.Fatalf("decision %+v: want allowed, owner %s and an OnEnd", d, u)
	}
	log := c.publishes()
	if len(log) != 1 || log[0].AppStream != "live/cam" || log[0].Owner != u || log[0].EndedAt != nil || log[0].Duration != nil {
		t.Fatalf("publish log while live: %+v", log)
	}
	time.Sleep(20 * time.Millisecond) // a duration > 0 (database clock)
	p.Close()
	p.Close() // idempotent: one end
	session.WaitPublishEnds(e.store)
	log = c.publishes()
	if len(log) != 1 || log[0].EndedAt == nil || log[0].Duration == nil || *log[0].Duration <= 0 ||
		!log[0].EndedAt.After(log[0].StartedAt) {
		t.Fatalf("publish log after the end: %+v, want ended_at and a duration", log)
	}
	if l := co.publishes(); len(l) != 0 {
		t.Fatalf("another user sees %d publish log rows, want 0", len(l))
	}

	// A publisher that ends after the store closed is not recorded, and neither
	// blocks nor panics.
	live, _ := publishWithKey(t, e, "live/cam", k.Key)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.store.Close(ctx); err != nil {
		t.Fatal(err)
	}
	live.Close()
}

// TestKeyRevoke: a revoked key stays listed, inactive, and no longer publishes; only
// its owner (or an admin) can revoke it; it cannot be reactivated even with the
// user's own SQL; DELETE still works.
func TestKeyRevoke(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db)
	u := db.CreateRole(t, "rv", "pw", "mtrelay_user")
	other := db.CreateRole(t, "rv2", "pw", "mtrelay_user")
	c, co := e.client(t), e.client(t)
	if c.login(u, "pw") != 200 || co.login(other, "pw") != 200 {
		t.Fatal("login failed")
	}
	k := c.createKey("live", "rv")
	if !k.Active || k.RevokedAt != nil {
		t.Fatalf("new key %+v: want active", k)
	}
	path := "/api/keys/" + itoa(k.ID) + "/revoke"

	if code, _ := co.do("POST", path, nil); code != http.StatusNotFound {
		t.Fatalf("another user revoking: %d, want 404", code)
	}
	csrf := c.csrf
	c.csrf = ""
	if code, _ := c.do("POST", path, nil); code != http.StatusForbidden {
		t.Fatalf("revoke without CSRF header: %d, want 403", code)
	}
	c.csrf = csrf
	if p, _ := publishWithKey(t, e, "live/rv", k.Key); p == nil {
		t.Fatal("active key refused")
	} else {
		p.Close()
	}
	if code, b := c.do("POST", path, nil); code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", code, b)
	}
	if code, b := c.do("PATCH", path, nil); code != http.StatusNoContent {
		t.Fatalf("revoke again (PATCH): %d %s, want 204", code, b)
	}
	code, b := c.do("GET", "/api/keys", nil)
	var ks []session.Key
	json.Unmarshal(b, &ks)
	if code != 200 || len(ks) != 1 || ks[0].Active || ks[0].RevokedAt == nil {
		t.Fatalf("keys after revoke: %d %+v, want one inactive key with revoked_at", code, ks)
	}
	if p, d := publishWithKey(t, e, "live/rv", k.Key); p != nil || d.Allow {
		t.Fatal("revoked key allowed to publish")
	}

	conn, err := pgx.Connect(t.Context(), db.Cluster.URLFor(u, "pw", db.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "UPDATE mtrelay.stream_keys SET active = true WHERE id = $1", k.ID); err == nil {
		t.Fatal("owner reactivated a revoked key")
	}
	if _, err := conn.Exec(t.Context(), "UPDATE mtrelay.stream_keys SET owner = $2 WHERE id = $1", k.ID, other); err == nil {
		t.Fatal("owner column is writable")
	}
	if code, _ := c.do("DELETE", "/api/keys/"+itoa(k.ID), nil); code != http.StatusNoContent {
		t.Fatalf("delete a revoked key: %d, want 204", code)
	}
	if code, _ := c.do("POST", path, nil); code != http.StatusNotFound {
		t.Fatalf("revoke a deleted key: %d, want 404", code)
	}
}

// TestLiveStreams: /api/live lists the hub's live streams and marks the ones the
// user may kick (their own; all for admins).
func TestLiveStreams(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db)
	u := db.CreateRole(t, "lv", "pw", "mtrelay_user")
	other := db.CreateRole(t, "lv2", "pw", "mtrelay_user")
	adm := db.CreateRole(t, "lva", "pw", "mtrelay_admin")
	c, co, ca := e.client(t), e.client(t), e.client(t)
	if c.login(u, "pw") != 200 || co.login(other, "pw") != 200 || ca.login(adm, "pw") != 200 {
		t.Fatal("login failed")
	}
	k := c.createKey("live", "lv")
	p, _ := publishWithKey(t, e, "live/lv", k.Key)
	defer p.Close()
	if _, err := e.hub.Subscribe("live/idle", relay.SubscribeOptions{}); err != nil { // not live
		t.Fatal(err)
	}
	for _, x := range []struct {
		name string
		c    *client
		mine bool
	}{{"owner", c, true}, {"other", co, false}, {"admin", ca, true}} {
		code, b := x.c.do("GET", "/api/live", nil)
		var live []session.LiveStream
		json.Unmarshal(b, &live)
		if code != 200 || len(live) != 1 || live[0].Key != "live/lv" || live[0].Mine != x.mine {
			t.Fatalf("%s: GET /api/live = %d %s, want live/lv with mine=%v", x.name, code, b, x.mine)
		}
	}
	anon := e.client(t)
	if code, _ := anon.do("GET", "/api/live", nil); code != http.StatusUnauthorized {
		t.Fatalf("GET /api/live without a session: %d, want 401", code)
	}
}
