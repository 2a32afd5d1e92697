package session

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// RunForTest runs fn on the connection of the session with cookie id, as a handler
// would.
func RunForTest(s *Store, id string, fn func(ctx context.Context, conn *pgx.Conn) error) error {
	in := s.lookup(id)
	if in == nil {
		return ErrSessionEnded
	}
	return in.do(context.Background(), time.Minute, fn)
}

// WaitPublishEnds waits for the end_publish calls already started (by a publish's
// OnEnd) to finish.
func WaitPublishEnds(s *Store) { s.ends.Wait() }
