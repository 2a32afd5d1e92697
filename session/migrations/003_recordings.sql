-- 003: recordings.
--
-- One row per FLV file the relay records (httptunnel/record): which stream, the file
-- (path relative to --record-dir), who published it (the stream key's owner), when
-- it started and ended, its size and media duration. The relay writes rows only
-- through the two SECURITY DEFINER functions below, which are all its service role
-- may use; users read their own rows (owner = current_user), admins all, on their
-- own connections (GET /api/recordings).

CREATE TABLE mtrelay.recordings (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  app         text NOT NULL,
  stream      text NOT NULL,
  path        text NOT NULL,
  -- NULL when the publish had no owner (no stream key): only admins see the row.
  owner       text,
  started_at  timestamptz NOT NULL DEFAULT now(),
  ended_at    timestamptz,
  bytes       bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
  duration_ms bigint NOT NULL DEFAULT 0 CHECK (duration_ms >= 0)
);
CREATE INDEX recordings_owner ON mtrelay.recordings (owner);

ALTER TABLE mtrelay.recordings ENABLE ROW LEVEL SECURITY;
CREATE POLICY recordings_own ON mtrelay.recordings FOR SELECT TO mtrelay_user
  USING (owner = current_user);
CREATE POLICY recordings_admin ON mtrelay.recordings FOR SELECT TO mtrelay_admin
  USING (true);
REVOKE ALL ON mtrelay.recordings FROM PUBLIC;
GRANT SELECT ON mtrelay.recordings TO mtrelay_user;

-- recording_started records a recording that began and returns its id.
CREATE FUNCTION mtrelay.recording_started(app text, stream text, path text, owner text,
    started_at timestamptz) RETURNS bigint
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO mtrelay.recordings (app, stream, path, owner, started_at)
  VALUES ($1, $2, $3, NULLIF($4, ''), coalesce($5, now()))
  RETURNING id
$$;

-- recording_ended records the end, size and media duration of recording id (once:
-- a second call changes nothing).
CREATE FUNCTION mtrelay.recording_ended(id bigint, bytes bigint, duration_ms bigint) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  UPDATE mtrelay.recordings r
     SET ended_at = now(), bytes = greatest($2, 0), duration_ms = greatest($3, 0)
   WHERE r.id = $1 AND r.ended_at IS NULL
$$;

-- recordings_interrupted ends the rows of recordings that started before $1 and never
-- ended: the relay that wrote them stopped without finishing them (kill -9, a crash,
-- the database unreachable at the end). A relay calls it at start with its own start
-- time; ended_at then says when that was noticed. Returns how many rows it ended.
CREATE FUNCTION mtrelay.recordings_interrupted(before timestamptz) RETURNS bigint
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  WITH ended AS (
    UPDATE mtrelay.recordings r SET ended_at = now()
     WHERE r.ended_at IS NULL AND r.started_at < $1
    RETURNING 1)
  SELECT count(*) FROM ended
$$;

REVOKE ALL ON FUNCTION mtrelay.recordings_interrupted(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mtrelay.recordings_interrupted(timestamptz) TO mtrelay_service;
REVOKE ALL ON FUNCTION mtrelay.recording_started(text, text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION mtrelay.recording_ended(bigint, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mtrelay.recording_started(text, text, text, text, timestamptz) TO mtrelay_service;
GRANT EXECUTE ON FUNCTION mtrelay.recording_ended(bigint, bigint, bigint) TO mtrelay_service;
