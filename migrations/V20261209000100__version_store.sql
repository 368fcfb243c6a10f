-- The gateway's version store behind as_of_time, shared by every replica
-- (docs/decisions.md, "Stateless replicas"). Per store ('files', 'rows'),
-- tenant, principal and object: the stored versions with their bytes, and
-- which version was observed at which as_of_time. Identifiers compare in
-- byte order (COLLATE "C"), as the in-process store compares them, so
-- "greatest time at or before t" and "smallest other version id" mean the
-- same in both.
--
-- The rules live in the functions below so that one statement, one round
-- trip and one transaction answer a whole batch:
-- - pecr_version_resolve: per item, the version in force at as_of_time;
--   when none is and the item offers the live version, store and observe it;
-- - pecr_version_record: store a version, observe it when a time is given,
--   and list the object's versions.
-- Writes take one transaction-level advisory lock per store, so the caps'
-- eviction (which reaches across principals for the store-wide cap) never
-- races another writer; a batch whose every item is already in force reads
-- only and takes no lock.

CREATE TABLE pecr_version_blobs (
    store text NOT NULL,
    tenant_id text COLLATE "C" NOT NULL,
    principal_id text COLLATE "C" NOT NULL,
    object_id text COLLATE "C" NOT NULL,
    version_id text COLLATE "C" NOT NULL,
    content bytea NOT NULL,
    -- Bytes the blob counts for: its length, at least one.
    charge bigint NOT NULL CHECK (charge >= 1),
    -- Insertion order within the owner (tenant and principal of the store).
    seq bigint NOT NULL,
    PRIMARY KEY (store, tenant_id, principal_id, object_id, version_id)
);

-- An owner's oldest blob, for eviction.
CREATE INDEX pecr_version_blobs_owner_seq
    ON pecr_version_blobs (store, tenant_id, principal_id, seq);

CREATE TABLE pecr_version_observations (
    store text NOT NULL,
    tenant_id text COLLATE "C" NOT NULL,
    principal_id text COLLATE "C" NOT NULL,
    object_id text COLLATE "C" NOT NULL,
    as_of_time text COLLATE "C" NOT NULL,
    version_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (store, tenant_id, principal_id, object_id, as_of_time)
);

-- Per owner with at least one blob: the bytes and blobs it holds, and the
-- next insertion number.
CREATE TABLE pecr_version_owners (
    store text NOT NULL,
    tenant_id text COLLATE "C" NOT NULL,
    principal_id text COLLATE "C" NOT NULL,
    bytes bigint NOT NULL,
    blobs bigint NOT NULL,
    next_seq bigint NOT NULL,
    PRIMARY KEY (store, tenant_id, principal_id)
);

-- The version in force at p_at: the one observed at the greatest observed
-- time <= p_at, none when p_at is later than the latest observation or
-- the version's bytes are gone.
CREATE FUNCTION pecr_version_select(p_store text, p_tenant text, p_principal text,
                                    p_object text, p_at text)
RETURNS TABLE (version_id text, content bytea)
LANGUAGE sql STABLE AS $$
    SELECT b.version_id, b.content
    FROM (
        SELECT o.version_id
        FROM pecr_version_observations o
        WHERE o.store = p_store AND o.tenant_id = p_tenant AND o.principal_id = p_principal
          AND o.object_id = p_object AND o.as_of_time <= p_at COLLATE "C"
          AND EXISTS (
              SELECT 1 FROM pecr_version_observations l
              WHERE l.store = p_store AND l.tenant_id = p_tenant AND l.principal_id = p_principal
                AND l.object_id = p_object AND l.as_of_time >= p_at COLLATE "C")
        ORDER BY o.as_of_time DESC
        LIMIT 1
    ) s
    JOIN pecr_version_blobs b
      ON b.store = p_store AND b.tenant_id = p_tenant AND b.principal_id = p_principal
     AND b.object_id = p_object AND b.version_id = s.version_id
$$;

-- Drops one blob and its accounting; an object left without blobs loses
-- its observations too (without bytes they can never answer).
CREATE FUNCTION pecr_version_remove(p_store text, p_tenant text, p_principal text,
                                    p_object text, p_version text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
BEGIN
    DELETE FROM pecr_version_blobs
    WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal
      AND object_id = p_object AND version_id = p_version
    RETURNING charge INTO removed;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE pecr_version_owners SET bytes = bytes - removed, blobs = blobs - 1
    WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal;
    DELETE FROM pecr_version_owners
    WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal AND blobs <= 0;
    IF NOT EXISTS (
        SELECT 1 FROM pecr_version_blobs
        WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal
          AND object_id = p_object)
    THEN
        DELETE FROM pecr_version_observations
        WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal
          AND object_id = p_object;
    END IF;
END
$$;

-- Drops the owner's oldest blob; false when it has none.
CREATE FUNCTION pecr_version_evict_oldest(p_store text, p_tenant text, p_principal text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    victim_object text;
    victim_version text;
BEGIN
    SELECT object_id, version_id INTO victim_object, victim_version
    FROM pecr_version_blobs
    WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal
    ORDER BY seq
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pecr_version_remove(p_store, p_tenant, p_principal, victim_object, victim_version);
    RETURN true;
END
$$;

-- Stores a blob unless caching is off, it exceeds the owner's cap
-- (p_charge; NULL when its bytes were too large to send) or it is stored
-- already; then evicts: the object's smallest
-- other version ids while it has too many, the owner's oldest blobs while
-- it is over its cap, and while the store is over its cap the oldest blob
-- of the owner holding the most bytes (ties: the greater tenant and
-- principal), leaving out the inserting owner when its only blob is this
-- one. Caller holds the store's lock.
CREATE FUNCTION pecr_version_insert(p_store text, p_tenant text, p_principal text,
                                    p_object text, p_version text, p_content bytea,
                                    p_charge bigint, p_max_bytes bigint,
                                    p_max_total bigint, p_max_versions bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    max_total bigint := greatest(p_max_total, p_max_bytes);
    max_versions bigint := greatest(p_max_versions, 1);
    next bigint;
    held bigint;
    victim text;
    victim_tenant text;
    victim_principal text;
BEGIN
    IF p_max_bytes = 0 OR p_charge IS NULL OR p_charge > p_max_bytes THEN
        RETURN;
    END IF;
    IF EXISTS (
        SELECT 1 FROM pecr_version_blobs
        WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal
          AND object_id = p_object AND version_id = p_version)
    THEN
        RETURN;
    END IF;
    INSERT INTO pecr_version_owners (store, tenant_id, principal_id, bytes, blobs, next_seq)
    VALUES (p_store, p_tenant, p_principal, 0, 0, 0)
    ON CONFLICT DO NOTHING;
    UPDATE pecr_version_owners
    SET bytes = bytes + p_charge, blobs = blobs + 1, next_seq = next_seq + 1
    WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal
    RETURNING next_seq INTO next;
    INSERT INTO pecr_version_blobs
        (store, tenant_id, principal_id, object_id, version_id, content, charge, seq)
    VALUES (p_store, p_tenant, p_principal, p_object, p_version, p_content, p_charge, next);

    -- Too many versions of this object: drop its smallest other ids.
    LOOP
        SELECT count(*) INTO held FROM pecr_version_blobs
        WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal
          AND object_id = p_object;
        EXIT WHEN held <= max_versions;
        SELECT version_id INTO victim FROM pecr_version_blobs
        WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal
          AND object_id = p_object AND version_id <> p_version
        ORDER BY version_id
        LIMIT 1;
        EXIT WHEN NOT FOUND;
        PERFORM pecr_version_remove(p_store, p_tenant, p_principal, p_object, victim);
    END LOOP;

    -- Over the owner's cap: its own oldest blobs go (the new one fits on
    -- its own, so it is never the one evicted).
    LOOP
        SELECT coalesce(max(bytes), 0) INTO held FROM pecr_version_owners
        WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal;
        EXIT WHEN held <= p_max_bytes;
        EXIT WHEN NOT pecr_version_evict_oldest(p_store, p_tenant, p_principal);
    END LOOP;

    -- Over the store's cap: the largest holder gives up its oldest.
    LOOP
        SELECT coalesce(sum(bytes), 0) INTO held FROM pecr_version_owners WHERE store = p_store;
        EXIT WHEN held <= max_total;
        SELECT tenant_id, principal_id INTO victim_tenant, victim_principal
        FROM pecr_version_owners
        WHERE store = p_store
          AND (NOT (tenant_id = p_tenant AND principal_id = p_principal) OR blobs > 1)
        ORDER BY bytes DESC, tenant_id DESC, principal_id DESC
        LIMIT 1;
        EXIT WHEN NOT FOUND;
        EXIT WHEN NOT pecr_version_evict_oldest(p_store, victim_tenant, victim_principal);
    END LOOP;
END
$$;

-- Records p_version as observed at p_at unless that time has an
-- observation; nothing for an object without stored blobs.
CREATE FUNCTION pecr_version_observe(p_store text, p_tenant text, p_principal text,
                                     p_object text, p_at text, p_version text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pecr_version_blobs
        WHERE store = p_store AND tenant_id = p_tenant AND principal_id = p_principal
          AND object_id = p_object)
    THEN
        INSERT INTO pecr_version_observations
            (store, tenant_id, principal_id, object_id, as_of_time, version_id)
        VALUES (p_store, p_tenant, p_principal, p_object, p_at, p_version)
        ON CONFLICT DO NOTHING;
    END IF;
END
$$;

-- Writers of one store take turns.
CREATE FUNCTION pecr_version_lock(p_store text)
RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(1346716498, hashtext(p_store)) -- 'PECR'
$$;

-- Per item (arrays of equal length; p_versions[i] NULL when the item offers
-- no live version; p_charges[i] the live version's charge, NULL when its
-- bytes were too large to send): the version in force at p_times[i]; when
-- none is and a live version is offered, it is stored and observed, and the
-- item answers NULL. Items run in order, so a later item sees an earlier
-- one's writes.
CREATE FUNCTION pecr_version_resolve(p_store text, p_tenant text, p_principal text,
                                     p_max_bytes bigint, p_max_total bigint,
                                     p_max_versions bigint, p_objects text[],
                                     p_times text[], p_versions text[], p_contents bytea[],
                                     p_charges bigint[])
RETURNS TABLE (ord integer, version_id text, content bytea)
LANGUAGE plpgsql AS $$
DECLARE
    locked boolean := false;
    found_version text;
    found_content bytea;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_objects, 1), 0) LOOP
        found_version := NULL;
        found_content := NULL;
        SELECT s.version_id, s.content INTO found_version, found_content
        FROM pecr_version_select(p_store, p_tenant, p_principal, p_objects[i], p_times[i]) s;
        IF found_version IS NULL AND p_versions[i] IS NOT NULL THEN
            IF NOT locked THEN
                PERFORM pecr_version_lock(p_store);
                locked := true;
                -- Another writer may have recorded it while this one waited.
                SELECT s.version_id, s.content INTO found_version, found_content
                FROM pecr_version_select(p_store, p_tenant, p_principal, p_objects[i], p_times[i]) s;
            END IF;
            IF found_version IS NULL THEN
                PERFORM pecr_version_insert(p_store, p_tenant, p_principal, p_objects[i],
                    p_versions[i], coalesce(p_contents[i], ''::bytea), p_charges[i],
                    p_max_bytes, p_max_total, p_max_versions);
                PERFORM pecr_version_observe(p_store, p_tenant, p_principal, p_objects[i],
                    p_times[i], p_versions[i]);
            END IF;
        END IF;
        ord := i;
        version_id := found_version;
        content := found_content;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Stores p_version (charge as in pecr_version_resolve), observes it at p_at
-- when p_at is not NULL, and lists the object's version ids in byte order.
CREATE FUNCTION pecr_version_record(p_store text, p_tenant text, p_principal text,
                                    p_max_bytes bigint, p_max_total bigint,
                                    p_max_versions bigint, p_object text, p_at text,
                                    p_version text, p_content bytea, p_charge bigint)
RETURNS TABLE (version_id text)
LANGUAGE plpgsql AS $$
BEGIN
    -- Nothing to write when the version is stored and the time observed.
    IF NOT EXISTS (
           SELECT 1 FROM pecr_version_blobs b
           WHERE b.store = p_store AND b.tenant_id = p_tenant AND b.principal_id = p_principal
             AND b.object_id = p_object AND b.version_id = p_version)
       OR (p_at IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM pecr_version_observations o
           WHERE o.store = p_store AND o.tenant_id = p_tenant AND o.principal_id = p_principal
             AND o.object_id = p_object AND o.as_of_time = p_at))
    THEN
        PERFORM pecr_version_lock(p_store);
        PERFORM pecr_version_insert(p_store, p_tenant, p_principal, p_object, p_version,
            p_content, p_charge, p_max_bytes, p_max_total, p_max_versions);
        IF p_at IS NOT NULL THEN
            PERFORM pecr_version_observe(p_store, p_tenant, p_principal, p_object, p_at, p_version);
        END IF;
    END IF;
    RETURN QUERY
        SELECT b.version_id FROM pecr_version_blobs b
        WHERE b.store = p_store AND b.tenant_id = p_tenant AND b.principal_id = p_principal
          AND b.object_id = p_object
        ORDER BY b.version_id;
END
$$;

-- Least privilege: ledger-writer's runtime role reads and writes the
-- version tables (through the functions, which run with its rights). This
-- is a cache under caps, not the ledger: eviction deletes, and only the
-- owners' counters are ever updated.
GRANT SELECT, INSERT, DELETE ON pecr_version_blobs, pecr_version_observations, pecr_version_owners
    TO pecr_ledger_rw;
GRANT UPDATE (bytes, blobs, next_seq) ON pecr_version_owners TO pecr_ledger_rw;
REVOKE ALL ON FUNCTION
    pecr_version_select(text, text, text, text, text),
    pecr_version_remove(text, text, text, text, text),
    pecr_version_evict_oldest(text, text, text),
    pecr_version_insert(text, text, text, text, text, bytea, bigint, bigint, bigint, bigint),
    pecr_version_observe(text, text, text, text, text, text),
    pecr_version_lock(text),
    pecr_version_resolve(text, text, text, bigint, bigint, bigint, text[], text[], text[], bytea[], bigint[]),
    pecr_version_record(text, text, text, bigint, bigint, bigint, text, text, text, bytea, bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    pecr_version_select(text, text, text, text, text),
    pecr_version_remove(text, text, text, text, text),
    pecr_version_evict_oldest(text, text, text),
    pecr_version_insert(text, text, text, text, text, bytea, bigint, bigint, bigint, bigint),
    pecr_version_observe(text, text, text, text, text, text),
    pecr_version_lock(text),
    pecr_version_resolve(text, text, text, bigint, bigint, bigint, text[], text[], text[], bytea[], bigint[]),
    pecr_version_record(text, text, text, bigint, bigint, bigint, text, text, text, bytea, bigint)
    TO pecr_ledger_rw;
