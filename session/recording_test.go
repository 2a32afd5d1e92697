package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/session"
)

func (c *client) recordings(query string) []session.Recording {
	c.t.Helper()
	code, b := c.do("GET", "/api/recordings"+query, nil)
	if code != http.StatusOK {
		c.t.Fatalf("GET /api/recordings%s: %d %s", query, code, b)
	}
	var out []session.Recording
	if err := json.Unmarshal(b, &out); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// TestRecordingsRLS: recordings written through the service role's functions are
// listed by GET /api/recordings on each user's own connection: a user sees only
// their own, an admin all (an ownerless one too); ended ones have their size and
// duration and are no longer active; the service role cannot read or write the
// table directly.
func TestRecordingsRLS(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	e := newEnv(t, db)
	u1 := db.CreateRole(t, "r1", "pw1", "mtrelay_user")
	u2 := db.CreateRole(t, "r2", "pw2", "mtrelay_user")
	adm := db.CreateRole(t, "radm", "pwa", "mtrelay_admin")
	c1, c2, ca := e.client(t), e.client(t), e.client(t)
	for _, x := range []struct {
		c     *client
		u, pw string
	}{{c1, u1, "pw1"}, {c2, u2, "pw2"}, {ca, adm, "pwa"}} {
		if code := x.c.login(x.u, x.pw); code != 200 {
			t.Fatalf("login %s: %d", x.u, code)
		}
	}
	start := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	started := func(stream, owner string) int64 {
		t.Helper()
		id, err := e.store.RecordingStarted(t.Context(), session.RecordingInfo{
			App: "live", Stream: stream, Path: "live/" + stream + "-20261130-120000.flv", Owner: owner, Started: start})
		if err != nil || id == 0 {
			t.Fatalf("RecordingStarted %s: %d %v", stream, id, err)
		}
		return id
	}
	id1 := started("one", u1)
	id2 := started("two", u2)
	started("nobody", "")
	if err := e.store.RecordingEnded(t.Context(), id1, 123456, 10500*time.Millisecond); err != nil {
		t.Fatalf("RecordingEnded: %v", err)
	}
	// A second end changes nothing.
	if err := e.store.RecordingEnded(t.Context(), id1, 1, time.Second); err != nil {
		t.Fatalf("second RecordingEnded: %v", err)
	}

	r1 := c1.recordings("")
	if len(r1) != 1 || r1[0].ID != id1 || r1[0].Active || r1[0].Bytes != 123456 || r1[0].DurationMS != 10500 ||
		r1[0].EndedAt == nil || !r1[0].StartedAt.Equal(start) || r1[0].Path != "live/one-20261130-120000.flv" {
		t.Fatalf("%s sees %+v, want only its ended recording %d", u1, r1, id1)
	}
	if r2 := c2.recordings(""); len(r2) != 1 || r2[0].ID != id2 || !r2[0].Active || r2[0].EndedAt != nil {
		t.Fatalf("%s sees %+v, want only its active recording %d", u2, r2, id2)
	}
	if ra := ca.recordings(""); len(ra) != 3 {
		t.Fatalf("admin sees %d recordings, want 3", len(ra))
	}
	if ra := ca.recordings("?app=live&stream=two"); len(ra) != 1 || ra[0].ID != id2 {
		t.Fatalf("admin's ?app=live&stream=two: %+v, want recording %d", ra, id2)
	}
	if code, _ := e.client(t).do("GET", "/api/recordings", nil); code != http.StatusUnauthorized {
		t.Fatalf("GET /api/recordings without a session: %d, want 401", code)
	}

	// A restarted relay ends the rows an earlier run left active, only those that
	// started before its own start.
	if n, err := e.store.RecordingsInterrupted(t.Context(), start); n != 0 || err != nil {
		t.Fatalf("RecordingsInterrupted(before all): %d %v, want 0", n, err)
	}
	if n, err := e.store.RecordingsInterrupted(t.Context(), start.Add(time.Minute)); n != 2 || err != nil {
		t.Fatalf("RecordingsInterrupted: %d %v, want 2 (two, nobody)", n, err)
	}
	if r2 := c2.recordings(""); len(r2) != 1 || r2[0].Active || r2[0].EndedAt == nil {
		t.Fatalf("%s sees %+v after RecordingsInterrupted, want its recording ended", u2, r2)
	}

	// The service role: EXECUTE on the three functions and nothing more.
	svc := db.CreateRole(t, "rsvc", "pw", "mtrelay_service")
	conn, err := pgx.Connect(t.Context(), db.Cluster.URLFor(svc, "pw", db.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{
		"SELECT * FROM mtrelay.recordings",
		"INSERT INTO mtrelay.recordings (app, stream, path) VALUES ('a', 'b', 'c')",
		"UPDATE mtrelay.recordings SET bytes = 0",
		"DELETE FROM mtrelay.recordings",
	} {
		_, err := conn.Exec(t.Context(), q)
		if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "42501" {
			t.Errorf("service role: %s: %v, want permission denied", q, err)
		}
	}
	// Nor may a user write rows of their own.
	uc, err := pgx.Connect(t.Context(), db.Cluster.URLFor(u1, "pw1", db.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close(context.Background())
	for _, q := range []string{
		"INSERT INTO mtrelay.recordings (app, stream, path, owner) VALUES ('live', 'x', 'x.flv', current_user)",
		"SELECT mtrelay.recording_started('live', 'x', 'x.flv', current_user, now())",
		"SELECT mtrelay.recording_ended(1, 0, 0)",
		"SELECT mtrelay.recordings_interrupted(now())",
	} {
		if _, err := uc.Exec(t.Context(), q); err == nil {
			t.Errorf("user: %s succeeded", q)
		}
	}
}

// TestRecordingsWithoutDatabase: the recording calls are no-ops, and
// /api/recordings is left to the caller (not mounted).
func TestRecordingsWithoutDatabase(t *testing.T) {
	t.Parallel()
	st, err := session.New(session.Config{}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	id, err := st.RecordingStarted(t.Context(), session.RecordingInfo{App: "live", Stream: "x", Path: "live/x.flv"})
	if id != 0 || err != nil {
		t.Fatalf("RecordingStarted without a database: %d %v", id, err)
	}
	if err := st.RecordingEnded(t.Context(), 1, 10, time.Second); err != nil {
		t.Fatalf("RecordingEnded without a database: %v", err)
	}
	mux := http.NewServeMux()
	st.Mount(mux)
	if rec := newRecorder(mux, "GET", "/api/recordings", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("GET /api/recordings without a database: %d, want 404 (not mounted)", rec.Code)
	}
}
