-- canopy_publish(topic, author, text, data, ref): publishes a message from SQL, inside the
-- caller's transaction (docs/protocol.md, "Publishing from SQL"). The message takes the
-- topic's next id under its row lock and a NOTIFY on canopy_bus, both at commit: every
-- instance reads it from the table then and delivers it; a rollback takes no id and sends
-- nothing. Returns the message's id (the first one's for a repeated ref of the same author).
--
-- The rules it applies are the server's at their defaults: the topic name rule, text at most
-- 2000 characters (MAX_MESSAGE_CHARS cannot be read from SQL), data any JSON value but null
-- of at most 16384 bytes as jsonb prints it (a space after each separator: a little stricter
-- than the server's compact count), text or data or both. The author is an existing user or
-- bot (by name, whatever its case) and not disabled; a private topic takes only its members;
-- a dm. topic must exist. Publish rate and TOPIC_CREATE_RATE are the caller's business.
CREATE OR REPLACE FUNCTION canopy_publish(topic text, author text, text text, data jsonb DEFAULT NULL, ref text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
  writer record;
  found_topic record;
  existing bigint;
  next_id bigint;
  written_at timestamptz := clock_timestamp();
BEGIN
  IF topic IS NULL OR topic !~ '^[a-z0-9][a-z0-9_.-]{0,63}$' THEN
    RAISE EXCEPTION 'canopy_publish: % is no topic name: a topic name matches ^[a-z0-9][a-z0-9_.-]{0,63}$', coalesce(quote_literal(topic), 'null')
      USING ERRCODE = '22023';
  END IF;
  SELECT u.id, u.name, u.kind, u.disabled_at INTO writer FROM users u WHERE lower(u.name) = lower(author);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'canopy_publish: there is no user or bot named %', coalesce(quote_literal(author), 'null')
      USING ERRCODE = '22023';
  END IF;
  IF writer.disabled_at IS NOT NULL THEN
    RAISE EXCEPTION 'canopy_publish: the account % is disabled', writer.name USING ERRCODE = '22023';
  END IF;
  IF data IS NOT NULL AND jsonb_typeof(data) = 'null' THEN
    RAISE EXCEPTION 'canopy_publish: data is any JSON value but null; pass SQL NULL instead' USING ERRCODE = '22023';
  END IF;
  IF data IS NULL AND (text IS NULL OR btrim(text) = '') THEN
    RAISE EXCEPTION 'canopy_publish: a message needs text, data or both' USING ERRCODE = '22023';
  END IF;
  IF char_length(coalesce(text, '')) > 2000 THEN
    RAISE EXCEPTION 'canopy_publish: text is over 2000 characters' USING ERRCODE = '22023';
  END IF;
  IF data IS NOT NULL AND octet_length(data::text) > 16384 THEN
    RAISE EXCEPTION 'canopy_publish: data is % bytes of JSON, over 16384', octet_length(data::text) USING ERRCODE = '22023';
  END IF;
  IF ref IS NOT NULL AND (ref = '' OR char_length(ref) > 64) THEN
    RAISE EXCEPTION 'canopy_publish: ref is 1 to 64 characters' USING ERRCODE = '22023';
  END IF;
  SELECT t.visibility, t.kind INTO found_topic FROM topics t WHERE t.name = topic;
  IF FOUND THEN
    IF found_topic.visibility = 'private'
       AND NOT EXISTS (SELECT 1 FROM topic_members tm WHERE tm.topic = canopy_publish.topic AND tm.user_id = writer.id) THEN
      RAISE EXCEPTION 'canopy_publish: % is private and % is not a member', topic, writer.name USING ERRCODE = '42501';
    END IF;
  ELSIF left(topic, 3) = 'dm.' THEN
    RAISE EXCEPTION 'canopy_publish: there is no direct-message topic %', topic USING ERRCODE = '22023';
  END IF;
  IF ref IS NOT NULL THEN
    SELECT m.id INTO existing FROM messages m WHERE m.author_id = writer.id AND m.ref = canopy_publish.ref;
    IF FOUND THEN
      RETURN existing;
    END IF;
  END IF;
  -- The topic's row lock: held to commit, so ids are gapless and in commit order.
  INSERT INTO topics AS t (name, last_id, last_at) VALUES (topic, 1, written_at)
  ON CONFLICT (name) DO UPDATE SET last_id = t.last_id + 1, last_at = greatest(t.last_at, excluded.last_at)
  RETURNING t.last_id INTO next_id;
  INSERT INTO messages (topic, id, author_id, author, text, data, bot, ref, at)
  VALUES (topic, next_id, writer.id, writer.name, coalesce(text, ''), data, writer.kind = 'bot', ref, written_at);
  -- The hint form of src/bus-format.ts: every instance, none of them the sender, reads the
  -- message from the table at commit and delivers it in order with the others.
  PERFORM pg_notify('canopy_bus', json_build_object('i', 'sql', 't', topic, 'f', next_id, 'n', 1)::text);
  RETURN next_id;
END
$$;
