-- 001: group roles, stream keys with row-level security, the publish log and the
-- SECURITY DEFINER functions the relay's service role calls.

-- Group roles are cluster-wide: create them unless another database's migration
-- already did.
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['mtrelay_user', 'mtrelay_admin', 'mtrelay_service'] LOOP
    BEGIN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END LOOP;
END
$$;

-- Admins may log in to the console and do everything a user does.
GRANT mtrelay_user TO mtrelay_admin;

REVOKE ALL ON SCHEMA mtrelay FROM PUBLIC;
GRANT USAGE ON SCHEMA mtrelay TO mtrelay_user, mtrelay_admin, mtrelay_service;

-- Stream keys: a row allows publishing app/stream with key. Rows belong to the role
-- that created them (owner defaults to current_user and users cannot set it).
CREATE TABLE mtrelay.stream_keys (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  app        text NOT NULL CHECK (length(app) BETWEEN 1 AND 128 AND app !~ '[/\\?[:cntrl:]]'),
  stream     text NOT NULL CHECK (length(stream) BETWEEN 1 AND 128 AND stream !~ '[/\\?[:cntrl:]]'),
  key        text NOT NULL UNIQUE CHECK (length(key) >= 16),
  owner      text NOT NULL DEFAULT current_user,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stream_keys_app_stream ON mtrelay.stream_keys (app, stream);

ALTER TABLE mtrelay.stream_keys ENABLE ROW LEVEL SECURITY;
-- Users see and change their own rows; admins (also members of mtrelay_user) all rows.
CREATE POLICY stream_keys_own ON mtrelay.stream_keys TO mtrelay_user
  USING (owner = current_user) WITH CHECK (owner = current_user);
CREATE POLICY stream_keys_admin ON mtrelay.stream_keys TO mtrelay_admin
  USING (true) WITH CHECK (true);

REVOKE ALL ON mtrelay.stream_keys FROM PUBLIC;
GRANT SELECT, DELETE ON mtrelay.stream_keys TO mtrelay_user;
GRANT INSERT (app, stream, key) ON mtrelay.stream_keys TO mtrelay_user;

-- Publish log: who published what, when and for how long. Written only through the
-- functions below; users read their own rows, admins all.
CREATE TABLE mtrelay.publish_log (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  app_stream text NOT NULL,
  owner      text NOT NULL,
  remote     text NOT NULL DEFAULT '',
  started_at timestamptz NOT NULL DEFAULT now(),
  ended_at   timestamptz
);
ALTER TABLE mtrelay.publish_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY publish_log_own ON mtrelay.publish_log FOR SELECT TO mtrelay_user
  USING (owner = current_user);
CREATE POLICY publish_log_admin ON mtrelay.publish_log FOR SELECT TO mtrelay_admin
  USING (true);
REVOKE ALL ON mtrelay.publish_log FROM PUBLIC;
GRANT SELECT ON mtrelay.publish_log TO mtrelay_user;

-- check_stream_key returns the role owning key when key may publish app_stream
-- ("app/stream"), NULL otherwise. SECURITY DEFINER: it runs as the table owner, so
-- the service role needs no privilege on the table itself.
CREATE FUNCTION mtrelay.check_stream_key(app_stream text, key text) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT k.owner FROM mtrelay.stream_keys k
   WHERE k.app || '/' || k.stream = $1 AND k.key = $2
   LIMIT 1
$$;

-- log_publish records a publish that was allowed and returns its log id.
CREATE FUNCTION mtrelay.log_publish(app_stream text, owner text, remote text) RETURNS bigint
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO mtrelay.publish_log (app_stream, owner, remote) VALUES ($1, $2, $3) RETURNING id
$$;

-- end_publish records when a logged publish ended.
CREATE FUNCTION mtrelay.end_publish(log_id bigint) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  UPDATE mtrelay.publish_log SET ended_at = now() WHERE id = $1 AND ended_at IS NULL
$$;

REVOKE ALL ON FUNCTION mtrelay.check_stream_key(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mtrelay.log_publish(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mtrelay.end_publish(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mtrelay.check_stream_key(text, text) TO mtrelay_service;
GRANT EXECUTE ON FUNCTION mtrelay.log_publish(text, text, text) TO mtrelay_service;
GRANT EXECUTE ON FUNCTION mtrelay.end_publish(bigint) TO mtrelay_service;
