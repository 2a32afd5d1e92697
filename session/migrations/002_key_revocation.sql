-- 002: revocable stream keys and publish durations.
--
-- A key is revoked by setting active = false (PATCH/POST /api/keys/{id}/revoke, on the
-- user's own connection, so row-level security applies); revoked_at is set by a
-- trigger and a revoked key never becomes active again. check_stream_key accepts only
-- active keys. DELETE still removes a key outright.

ALTER TABLE mtrelay.stream_keys
  ADD COLUMN active     boolean NOT NULL DEFAULT true,
  ADD COLUMN revoked_at timestamptz;

-- Users may change only the active flag (of their own rows, by the existing policies).
GRANT UPDATE (active) ON mtrelay.stream_keys TO mtrelay_user;

CREATE FUNCTION mtrelay.stream_keys_revoke() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NEW.active AND NOT OLD.active THEN
    RAISE EXCEPTION 'a revoked stream key cannot be reactivated' USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.active AND NOT NEW.active THEN
    NEW.revoked_at := now();
  ELSE
    NEW.revoked_at := OLD.revoked_at;
  END IF;
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION mtrelay.stream_keys_revoke() FROM PUBLIC;

CREATE TRIGGER stream_keys_revoke BEFORE UPDATE ON mtrelay.stream_keys
  FOR EACH ROW EXECUTE FUNCTION mtrelay.stream_keys_revoke();

-- Only active keys may publish.
CREATE OR REPLACE FUNCTION mtrelay.check_stream_key(app_stream text, key text) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $$
  SELECT k.owner FROM mtrelay.stream_keys k
   WHERE k.app || '/' || k.stream = $1 AND k.key = $2 AND k.active
   LIMIT 1
$$;

-- How long each publish lasted (NULL while it is live).
ALTER TABLE mtrelay.publish_log
  ADD COLUMN duration interval GENERATED ALWAYS AS (ended_at - started_at) STORED;
