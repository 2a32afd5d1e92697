package session_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mtrelay/mtrelay/session"
)

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	all, err := session.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	applied, err := session.Migrate(t.Context(), db.URL)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if len(applied) != 0 {
		t.Fatalf("second migrate applied %v, want nothing", applied)
	}
	conn, err := pgx.Connect(t.Context(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v int
	if err := conn.QueryRow(t.Context(), "SELECT max(version) FROM mtrelay.schema_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if want := all[len(all)-1].Version; v != want {
		t.Fatalf("schema version %d, want %d", v, want)
	}
}

// TestServiceRoleLeastPrivilege: the service role can call the key check and
// nothing else: no reading the keys table.
func TestServiceRoleLeastPrivilege(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	svc := db.CreateRole(t, "svc", "pw", "mtrelay_service")
	conn, err := pgx.Connect(t.Context(), db.Cluster.URLFor(svc, "pw", db.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var owner *string
	if err := conn.QueryRow(t.Context(), "SELECT mtrelay.check_stream_key('live/x', 'nokey-nokey-nokey')").Scan(&owner); err != nil {
		t.Fatalf("check_stream_key as service: %v", err)
	}
	if owner != nil {
		t.Fatalf("unknown key has owner %q", *owner)
	}
	if _, err := conn.Exec(t.Context(), "SELECT * FROM mtrelay.stream_keys"); err == nil {
		t.Fatal("service role could read mtrelay.stream_keys")
	}
}
